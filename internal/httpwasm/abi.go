package httpwasm

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// The http-wasm handler ABI (https://http-wasm.io/http-handler-abi/): the
// host module the guest imports, its header and body kinds, features and
// log levels.
const (
	hostModule = "http_handler"

	kindRequest  = 0
	kindResponse = 1

	featureBufferRequest  = 1
	featureBufferResponse = 2
	featureTrailers       = 4
	supportedFeatures     = featureBufferRequest | featureBufferResponse

	logDebug = -1
	logInfo  = 0
	logWarn  = 1
	logError = 2
)

// guestKey is the context key under which a call into the guest carries
// its instance, for the host functions.
type guestKey struct{}

func instanceOf(ctx context.Context) *instance {
	in, _ := ctx.Value(guestKey{}).(*instance)
	return in
}

// exchange is the request being handled by an instance, and the response
// as it is built.
type exchange struct {
	r *http.Request
	w http.ResponseWriter
	// readBuf is the request body the guest read so far (replayed, followed
	// by the unread rest, for the next handler) and reqEOF whether it read
	// all of it; newBody, once the guest wrote one, replaces the body.
	readBuf  bytes.Buffer
	reqEOF   bool
	newBody  *bytes.Buffer
	response bool // in handle_response
	// status and respBody are the guest's own answer (handle_request) or
	// the buffered answer of the next handler (handle_response).
	status   int
	respBody *bytes.Buffer
	respRead int
	// bodyWritten: the guest wrote the response body (replaces it).
	bodyWritten bool
}

// hostFunctions defines the http_handler module.
func hostFunctions(ctx context.Context, rt wazero.Runtime, log *slog.Logger) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	b := rt.NewHostModuleBuilder(hostModule)
	def := func(name string, fn func(ctx context.Context, m api.Module, in *instance, stack []uint64), params, results []api.ValueType) {
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			in := instanceOf(ctx)
			if in == nil {
				panic("http_handler." + name + " called outside a request")
			}
			fn(ctx, m, in, stack)
		}), params, results).Export(name)
	}
	def("enable_features", func(_ context.Context, _ api.Module, in *instance, s []uint64) {
		in.features |= uint32(s[0]) & supportedFeatures
		s[0] = uint64(in.features)
	}, []api.ValueType{i32}, []api.ValueType{i32})
	def("get_config", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		s[0] = uint64(writeIfFits(m, uint32(s[0]), uint32(s[1]), in.pool.guestConfig))
	}, []api.ValueType{i32, i32}, []api.ValueType{i32})
	def("log_enabled", func(ctx context.Context, _ api.Module, _ *instance, s []uint64) {
		s[0] = 0
		if lvl, ok := slogLevel(int32(s[0])); ok && log.Enabled(ctx, lvl) {
			s[0] = 1
		}
	}, []api.ValueType{i32}, []api.ValueType{i32})
	def("log", func(ctx context.Context, m api.Module, _ *instance, s []uint64) {
		if lvl, ok := slogLevel(int32(s[0])); ok && log.Enabled(ctx, lvl) {
			log.Log(ctx, lvl, "wasm guest: "+string(read(m, uint32(s[1]), uint32(s[2]))))
		}
	}, []api.ValueType{i32, i32, i32}, nil)
	def("get_method", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		s[0] = uint64(writeIfFits(m, uint32(s[0]), uint32(s[1]), []byte(in.ex().r.Method)))
	}, []api.ValueType{i32, i32}, []api.ValueType{i32})
	def("set_method", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		in.ex().r.Method = string(read(m, uint32(s[0]), uint32(s[1])))
	}, []api.ValueType{i32, i32}, nil)
	def("get_uri", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		s[0] = uint64(writeIfFits(m, uint32(s[0]), uint32(s[1]), []byte(in.ex().r.URL.RequestURI())))
	}, []api.ValueType{i32, i32}, []api.ValueType{i32})
	def("set_uri", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		r := in.ex().r
		u, err := url.ParseRequestURI(string(read(m, uint32(s[0]), uint32(s[1]))))
		if err != nil {
			panic("set_uri: " + err.Error())
		}
		r.URL.Path, r.URL.RawPath, r.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
		if r.RequestURI != "" {
			r.RequestURI = r.URL.RequestURI()
		}
	}, []api.ValueType{i32, i32}, nil)
	def("get_protocol_version", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		s[0] = uint64(writeIfFits(m, uint32(s[0]), uint32(s[1]), []byte(in.ex().r.Proto)))
	}, []api.ValueType{i32, i32}, []api.ValueType{i32})
	def("get_source_addr", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		s[0] = uint64(writeIfFits(m, uint32(s[0]), uint32(s[1]), []byte(in.ex().r.RemoteAddr)))
	}, []api.ValueType{i32, i32}, []api.ValueType{i32})
	def("get_header_names", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		h := in.ex().header(uint32(s[0]))
		var buf []byte
		for k := range h {
			buf = append(append(buf, strings.ToLower(k)...), 0)
		}
		s[0] = uint64(len(h))<<32 | uint64(writeIfFits(m, uint32(s[1]), uint32(s[2]), buf))
	}, []api.ValueType{i32, i32, i32}, []api.ValueType{i64})
	def("get_header_values", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		h := in.ex().header(uint32(s[0]))
		vals := h.Values(string(read(m, uint32(s[1]), uint32(s[2]))))
		var buf []byte
		for _, v := range vals {
			buf = append(append(buf, v...), 0)
		}
		s[0] = uint64(len(vals))<<32 | uint64(writeIfFits(m, uint32(s[3]), uint32(s[4]), buf))
	}, []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i64})
	def("set_header_value", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		in.ex().header(uint32(s[0])).Set(string(read(m, uint32(s[1]), uint32(s[2]))), string(read(m, uint32(s[3]), uint32(s[4]))))
	}, []api.ValueType{i32, i32, i32, i32, i32}, nil)
	def("add_header_value", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		in.ex().header(uint32(s[0])).Add(string(read(m, uint32(s[1]), uint32(s[2]))), string(read(m, uint32(s[3]), uint32(s[4]))))
	}, []api.ValueType{i32, i32, i32, i32, i32}, nil)
	def("remove_header", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		in.ex().header(uint32(s[0])).Del(string(read(m, uint32(s[1]), uint32(s[2]))))
	}, []api.ValueType{i32, i32, i32}, nil)
	def("read_body", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		n, eof := in.ex().readBody(uint32(s[0]), m, uint32(s[1]), uint32(s[2]))
		s[0] = uint64(n)
		if eof {
			s[0] |= 1 << 32
		}
	}, []api.ValueType{i32, i32, i32}, []api.ValueType{i64})
	def("write_body", func(_ context.Context, m api.Module, in *instance, s []uint64) {
		in.ex().writeBody(uint32(s[0]), read(m, uint32(s[1]), uint32(s[2])))
	}, []api.ValueType{i32, i32, i32}, nil)
	def("get_status_code", func(_ context.Context, _ api.Module, in *instance, s []uint64) {
		s[0] = uint64(in.ex().status)
	}, nil, []api.ValueType{i32})
	def("set_status_code", func(_ context.Context, _ api.Module, in *instance, s []uint64) {
		in.ex().status = int(uint32(s[0]))
	}, []api.ValueType{i32}, nil)
	_, err := b.Instantiate(ctx)
	return err
}

func slogLevel(l int32) (slog.Level, bool) {
	switch l {
	case logDebug:
		return slog.LevelDebug, true
	case logInfo:
		return slog.LevelInfo, true
	case logWarn:
		return slog.LevelWarn, true
	case logError:
		return slog.LevelError, true
	}
	return 0, false
}

// read copies guest memory; out of range is a guest bug and traps.
func read(m api.Module, ptr, n uint32) []byte {
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		panic("http_handler: guest passed memory out of range")
	}
	return bytes.Clone(b)
}

// writeIfFits writes v to the guest's buffer when it fits (the ABI's rule)
// and returns v's length either way.
func writeIfFits(m api.Module, ptr, limit uint32, v []byte) uint32 {
	if uint32(len(v)) <= limit && len(v) > 0 {
		if !m.Memory().Write(ptr, v) {
			panic("http_handler: guest buffer out of range")
		}
	}
	return uint32(len(v))
}

func (ex *exchange) header(kind uint32) http.Header {
	switch kind {
	case kindRequest:
		return ex.r.Header
	case kindResponse:
		return ex.w.Header()
	}
	return http.Header{} // trailers are not supported: empty, writes dropped
}

// readBody reads the request body (kind 0) or, in handle_response, the
// buffered response body (kind 1) into the guest's buffer.
func (ex *exchange) readBody(kind uint32, m api.Module, ptr, limit uint32) (uint32, bool) {
	var chunk []byte
	var eof bool
	switch kind {
	case kindRequest:
		if ex.newBody != nil {
			return 0, true
		}
		if ex.reqEOF || ex.r.Body == nil {
			return 0, true
		}
		buf := make([]byte, limit)
		n, err := io.ReadFull(ex.r.Body, buf)
		chunk, eof = buf[:n], err != nil
		ex.readBuf.Write(chunk)
		ex.reqEOF = eof
	case kindResponse:
		if ex.respBody == nil {
			return 0, true
		}
		rest := ex.respBody.Bytes()[ex.respRead:]
		n := min(int(limit), len(rest))
		chunk, eof = rest[:n], n == len(rest)
		ex.respRead += n
	default:
		return 0, true
	}
	if len(chunk) > 0 && !m.Memory().Write(ptr, chunk) {
		panic("http_handler: read_body buffer out of range")
	}
	return uint32(len(chunk)), eof
}

// writeBody replaces (first write) or extends the request or response body.
func (ex *exchange) writeBody(kind uint32, p []byte) {
	switch kind {
	case kindRequest:
		if ex.newBody == nil {
			ex.newBody = &bytes.Buffer{}
		}
		ex.newBody.Write(p)
	case kindResponse:
		if !ex.bodyWritten || ex.respBody == nil {
			ex.respBody = &bytes.Buffer{}
			ex.bodyWritten = true
			ex.respRead = 0
		}
		ex.respBody.Write(p)
	}
}

// nextRequest is the request as the next handler gets it: the guest's body,
// or what it read followed by the rest.
func (ex *exchange) nextRequest() *http.Request {
	r := ex.r
	switch {
	case ex.newBody != nil:
		b := ex.newBody.Bytes()
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		r.Header.Del("Content-Length")
	case ex.readBuf.Len() > 0:
		rest := r.Body
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(ex.readBuf.Bytes()), rest), rest}
		r.GetBody = nil
	}
	return r
}
