// Package localstorage is the bindings.localstorage output binding: files
// under a root folder (metadata rootPath), with Dapr's operations create,
// get, list and delete on the file named by the request's fileName
// metadata. Paths never leave the root: ".." and symbolic links that point
// outside it are refused.
package localstorage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
)

// Type is the component's spec.type.
const Type = "bindings.localstorage"

const metadataFileName = "fileName"

// disallowed are roots Dapr refuses, as they expose the system.
var disallowed = []string{"/proc", "/sys", "/dev", "/boot", "/etc", "/run", "/var/run"}

// Binding is a local storage output binding.
type Binding struct {
	root string
}

// New returns an uninitialised local storage binding.
func New() *Binding { return &Binding{} }

// parseRoot reads and checks rootPath.
func parseRoot(md components.Metadata) (string, error) {
	root := md.String("rootPath", "")
	if strings.TrimSpace(root) == "" {
		return "", fmt.Errorf("component %q: metadata %q is required: the folder the files live in", md.Name, "rootPath")
	}
	root = filepath.Clean(root)
	if !filepath.IsAbs(root) {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("component %q: metadata %q: %w", md.Name, "rootPath", err)
		}
		root = filepath.Join(wd, root)
	}
	for _, p := range disallowed {
		if root == p || strings.HasPrefix(root, p+"/") || root == "/" {
			return "", fmt.Errorf("component %q: metadata %q: %s is a system location; choose another folder", md.Name, "rootPath", root)
		}
	}
	return root, nil
}

// Init creates the root folder if needed.
func (b *Binding) Init(_ context.Context, md components.Metadata) error {
	root, err := parseRoot(md)
	if err != nil {
		return components.Permanent(err)
	}
	if err := os.MkdirAll(root, 0o777); err != nil {
		return components.Permanent(fmt.Errorf("component %q: cannot create rootPath %s: %w", md.Name, root, err))
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return components.Permanent(fmt.Errorf("component %q: rootPath %s: %w", md.Name, root, err))
	}
	b.root = real
	return nil
}

// Operations lists create, get, list and delete.
func (b *Binding) Operations() []string {
	return []string{bindings.OperationCreate, bindings.OperationGet, bindings.OperationList, bindings.OperationDelete}
}

// relative turns a requested file name into a path inside the root, as
// Dapr's secure join does for "..": it cannot climb above the root.
func relative(name string) string {
	return strings.TrimPrefix(filepath.Join("/", name), "/")
}

// Invoke runs one operation.
func (b *Binding) Invoke(_ context.Context, req *bindings.InvokeRequest) (*bindings.InvokeResponse, error) {
	if b.root == "" {
		return nil, errors.New("local storage binding is not initialised")
	}
	name := req.Metadata[metadataFileName]
	if name == "" && req.Operation == bindings.OperationCreate {
		name = uuid.NewString()
	}
	rel := relative(name)
	root, err := os.OpenRoot(b.root)
	if err != nil {
		return nil, fmt.Errorf("open rootPath %s: %w", b.root, err)
	}
	defer root.Close()
	switch req.Operation {
	case bindings.OperationCreate:
		return b.create(root, rel, req.Data)
	case bindings.OperationGet:
		return b.get(root, rel)
	case bindings.OperationDelete:
		if rel == "" {
			return nil, errors.New("metadata fileName is required to delete a file")
		}
		if err := root.Remove(rel); err != nil {
			return nil, fmt.Errorf("error deleting file %s: %w", filepath.Join(b.root, rel), err)
		}
		return nil, nil
	case bindings.OperationList:
		return b.list(root, rel)
	}
	return nil, fmt.Errorf("unsupported operation %q: use create, get, list or delete", req.Operation)
}

func (b *Binding) create(root *os.Root, rel string, data []byte) (*bindings.InvokeResponse, error) {
	// Dapr's rules: a JSON string is stored unquoted, and base64 text is
	// stored decoded.
	if s, err := strconv.Unquote(string(data)); err == nil {
		data = []byte(s)
	}
	if dec, err := base64.StdEncoding.DecodeString(string(data)); err == nil {
		data = dec
	}
	if dir := filepath.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o777); err != nil {
			return nil, fmt.Errorf("error creating directory %s: %w", filepath.Join(b.root, dir), err)
		}
	}
	if err := root.WriteFile(rel, data, 0o666); err != nil {
		return nil, fmt.Errorf("error writing file %s: %w", filepath.Join(b.root, rel), err)
	}
	out, _ := json.Marshal(struct {
		FileName string `json:"fileName"`
	}{rel})
	return &bindings.InvokeResponse{Data: out}, nil
}

func (b *Binding) get(root *os.Root, rel string) (*bindings.InvokeResponse, error) {
	data, err := root.ReadFile(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("file not found: %s", filepath.Join(b.root, rel))
	}
	if err != nil {
		return nil, fmt.Errorf("error reading file %s: %w", filepath.Join(b.root, rel), err)
	}
	return &bindings.InvokeResponse{Data: data}, nil
}

// list returns the absolute paths of the files under the named folder
// (the root by default), as Dapr does.
func (b *Binding) list(root *os.Root, rel string) (*bindings.InvokeResponse, error) {
	if rel == "" {
		rel = "."
	}
	fi, err := root.Stat(rel)
	if err != nil {
		return nil, fmt.Errorf("error getting stats for path %s: %w", filepath.Join(b.root, rel), err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("unable to list files as the file specified is not a directory: %s", filepath.Join(b.root, rel))
	}
	files := []string{}
	err = fs.WalkDir(root.FS(), rel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			files = append(files, filepath.Join(b.root, p))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("error listing files in %s: %w", filepath.Join(b.root, rel), err)
	}
	out, _ := json.Marshal(files)
	return &bindings.InvokeResponse{Data: out}, nil
}

// Close does nothing.
func (b *Binding) Close() error { return nil }
