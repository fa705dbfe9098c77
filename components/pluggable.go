package components

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Pluggable components (Dapr's term) are gRPC servers listening on a Unix
// socket in one shared folder: a socket "<name>.sock" serves the component
// type "<category>.<name>" (e.g. "pubsub.mybroker").
const (
	// SocketsFolderEnv names the folder (daprd's variable).
	SocketsFolderEnv = "DAPR_COMPONENTS_SOCKETS_FOLDER"
	// DefaultSocketsFolder is daprd's folder when the variable is unset.
	DefaultSocketsFolder = "/tmp/dapr-components-sockets"
	// socketSuffix ends every socket file name.
	socketSuffix = ".sock"
	// instanceHeader carries the component's name on every call, so one
	// server can host several components of its type.
	instanceHeader = "x-component-instance"
)

// SocketsFolder is the folder of pluggable components' sockets.
type SocketsFolder string

// SocketsFolderFromEnv reads SocketsFolderEnv through getenv (os.Getenv when
// nil), defaulting to DefaultSocketsFolder.
func SocketsFolderFromEnv(getenv func(string) string) SocketsFolder {
	if getenv == nil {
		getenv = os.Getenv
	}
	if dir := getenv(SocketsFolderEnv); dir != "" {
		return SocketsFolder(dir)
	}
	return DefaultSocketsFolder
}

// Socket returns the socket serving a component of spec.type typ in
// category ("pubsub", "state"), and whether such a socket exists now.
func (f SocketsFolder) Socket(category, typ string) (string, bool) {
	name, ok := strings.CutPrefix(typ, category+".")
	if !ok || name == "" || strings.ContainsAny(name, `/\`) || f == "" {
		return "", false
	}
	path := filepath.Join(string(f), name+socketSuffix)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Type() != os.ModeSocket {
		return "", false
	}
	return path, true
}

// DialSocket returns a gRPC connection to the pluggable component listening
// on socket, which names the component instance (its metadata.name) on every
// call. It does not wait for the server: the first call does.
func DialSocket(socket, instance string) (*grpc.ClientConn, error) {
	withInstance := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(ctx, instanceHeader, instance)
	}
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(withInstance(ctx), method, req, reply, cc, opts...)
		}),
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(withInstance(ctx), desc, cc, method, opts...)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("pluggable component socket %s: %w", socket, err)
	}
	return conn, nil
}
