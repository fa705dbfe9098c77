package inmemory

import (
	"context"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// settings is what Init reads from the metadata.
type settings struct {
	concurrency   int
	redeliverWait time.Duration
}

// FuzzInit fuzzes the metadata Init reads (see metadatafuzz.Run); a failed
// Init is a permanent error, since retrying cannot fix metadata.
func FuzzInit(f *testing.F) {
	seeds := []map[string]string{nil, {"concurrency": "3", "redeliverInterval": "1s"}, {"concurrency": "x"}, {"redeliverInterval": "soon"}}
	metadatafuzz.Run(f, "fuzzed", []string{"concurrency", "redeliverInterval"}, seeds, func(p map[string]string) (settings, error) {
		ps := New(nil)
		defer ps.Close()
		err := ps.Init(context.Background(), components.Metadata{Name: "fuzzed", Properties: p})
		if err != nil && !components.IsPermanent(err) {
			panic("Init failed with an error that is not permanent: " + err.Error())
		}
		return settings{ps.concurrency, ps.redeliverWait}, err
	}, nil)
}
