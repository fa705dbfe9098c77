package encv1

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
)

// Header is a parsed document header.
type Header struct {
	Manifest Manifest
	// RawManifest is the manifest line as written: the MAC covers these
	// bytes, never a re-encoding.
	RawManifest []byte
	// MAC is the decoded third line.
	MAC []byte
}

// ReadHeader reads the three header lines from in (at most SegmentSize
// bytes) and returns them with a reader of the rest of the document.
func ReadHeader(in io.Reader) (Header, io.Reader, error) {
	buf := make([]byte, 0, 512)
	var lines [][]byte
	start := 0
	for len(lines) < 3 {
		if len(buf) == cap(buf) {
			if cap(buf) >= SegmentSize {
				return Header{}, nil, errors.New("header is too long")
			}
			nb := make([]byte, len(buf), min(2*cap(buf), SegmentSize))
			copy(nb, buf)
			buf = nb
		}
		m, err := in.Read(buf[len(buf):cap(buf)])
		scan := len(buf)
		buf = buf[:len(buf)+m]
		for len(lines) < 3 {
			i := bytes.IndexByte(buf[scan:], '\n')
			if i < 0 {
				break
			}
			end := scan + i
			line := buf[start:end]
			if len(line) == 0 {
				return Header{}, nil, errors.New("invalid format")
			}
			if len(lines) == 0 && string(line) != SchemeName {
				return Header{}, nil, errors.New("unsupported scheme")
			}
			lines = append(lines, line)
			start, scan = end+1, end+1
		}
		if len(lines) == 3 {
			break
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				switch len(lines) {
				case 0:
					return Header{}, nil, errors.New("scheme name not found")
				case 1:
					return Header{}, nil, errors.New("manifest not found")
				default:
					return Header{}, nil, errors.New("message authentication code not found")
				}
			}
			return Header{}, nil, err
		}
	}
	h := Header{RawManifest: bytes.Clone(lines[1])}
	if err := json.Unmarshal(h.RawManifest, &h.Manifest); err != nil || h.Manifest.validate() != nil {
		// daprd hides the reason, so as not to tell too much.
		return Header{}, nil, errors.New("invalid manifest")
	}
	mac, err := base64.StdEncoding.AppendDecode(nil, lines[2])
	if err != nil {
		return Header{}, nil, errors.New("failed to decode header's signature")
	}
	h.MAC = mac
	rest := in
	if start < len(buf) {
		rest = io.MultiReader(bytes.NewReader(bytes.Clone(buf[start:])), in)
	}
	return h, rest, nil
}
