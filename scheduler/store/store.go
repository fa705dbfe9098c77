// Package store is the scheduler's durable state: the embedded etcd server
// (or a client of an external one), the key layout and the records kept
// under it.
//
// The keys are Dapr scheduler's, so tools and tests that look into its etcd
// find the same names:
//
//	dapr/jobs/<job name>        a job (Job)
//	dapr/counters/<job name>    its progress: ticks done, last tick, attempts (Counter)
//	dapr/leadership/<replica>   one per live replica, on the replica's lease (Leader)
//
// Job names are Dapr's: "app||<namespace>||<app id>||<name>" for the Jobs
// API and "actorreminder||<namespace>||<actor type>||<actor id>||<name>" for
// actor reminders. The values are Tandem's own records: a job in protobuf
// wire form (EncodeJob), so that its data, up to megabytes, is stored as
// given rather than as base64 in JSON; counters and leadership in JSON.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tandemrun/tandem/scheduler/schedule"
)

// Key prefixes.
const (
	JobsPrefix       = "dapr/jobs/"
	CountersPrefix   = "dapr/counters/"
	LeadershipPrefix = "dapr/leadership/"
)

// JobKey is the key of the job named name (a full Dapr job name).
func JobKey(name string) string { return JobsPrefix + name }

// CounterKey is the key of the job's counter.
func CounterKey(name string) string { return CountersPrefix + name }

// LeadershipKey is the key of a replica's leadership record.
func LeadershipKey(id string) string { return LeadershipPrefix + id }

// Job is a stored job.
type Job struct {
	// UID is random, new each time the job is written: a counter of
	// another UID belongs to an earlier job of the same name, and the job's
	// owner among the replicas is UID modulo their number.
	UID uint64 `json:"uid"`
	// Plan is the job's timing fixed when it was written.
	Plan schedule.Plan `json:"plan"`
	// Job is the job as the client gave it (dapr.proto.scheduler.v1.Job,
	// with the default failure policy filled in), in protobuf.
	Job []byte `json:"job"`
	// Metadata is the request's dapr.proto.scheduler.v1.JobMetadata, in
	// protobuf.
	Metadata []byte `json:"metadata"`
}

// NewJob builds the record of a job.
func NewJob(uid uint64, plan schedule.Plan, job *schedulerv1.Job, meta *schedulerv1.JobMetadata) (*Job, error) {
	jb, err := proto.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("encode job: %w", err)
	}
	mb, err := proto.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("encode job metadata: %w", err)
	}
	return &Job{UID: uid, Plan: plan, Job: jb, Metadata: mb}, nil
}

// Decode returns the job's API message and metadata.
func (j *Job) Decode() (*schedulerv1.Job, *schedulerv1.JobMetadata, error) {
	job, meta := new(schedulerv1.Job), new(schedulerv1.JobMetadata)
	if err := proto.Unmarshal(j.Job, job); err != nil {
		return nil, nil, fmt.Errorf("decode stored job: %w", err)
	}
	if err := proto.Unmarshal(j.Metadata, meta); err != nil {
		return nil, nil, fmt.Errorf("decode stored job metadata: %w", err)
	}
	return job, meta, nil
}

// DecodeMetadata returns the job's metadata alone (not its data).
func (j *Job) DecodeMetadata() (*schedulerv1.JobMetadata, error) {
	meta := new(schedulerv1.JobMetadata)
	if err := proto.Unmarshal(j.Metadata, meta); err != nil {
		return nil, fmt.Errorf("decode stored job metadata: %w", err)
	}
	return meta, nil
}

// Counter is a job's progress.
type Counter struct {
	// JobUID is the UID of the job this counter counts.
	JobUID uint64 `json:"jobUid"`
	// Count is how many ticks are done (delivered, or dropped by the
	// failure policy).
	Count uint32 `json:"count"`
	// Last is the scheduled time of the last tick done.
	Last time.Time `json:"last,omitzero"`
	// Attempts is how many times the current tick failed.
	Attempts uint32 `json:"attempts,omitempty"`
	// RetryAt, when set, is when the current tick is tried again.
	RetryAt time.Time `json:"retryAt,omitzero"`
	// Inflight, when set, is the scheduled time of the tick being
	// delivered by replica Owner: no other replica delivers it while Owner
	// is alive; once Owner is gone, it is delivered again.
	Inflight time.Time `json:"inflight,omitzero"`
	Owner    string    `json:"owner,omitempty"`
}

// Leader is a replica's leadership record.
type Leader struct {
	// ID is the replica's --id.
	ID string `json:"id"`
	// Address is where sidecars reach the replica's gRPC API.
	Address string `json:"address"`
}

// Encode marshals a counter or leadership record (a job's is EncodeJob).
func Encode(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// The fields of a job record in wire form.
const (
	jobFieldUID      protowire.Number = 1 // varint
	jobFieldPlan     protowire.Number = 2 // bytes: the Plan in JSON (small)
	jobFieldJob      protowire.Number = 3 // bytes: Job
	jobFieldMetadata protowire.Number = 4 // bytes: Metadata
)

// EncodeJob renders a job record in its wire form: a protobuf message of
// the UID, the plan (JSON), the job and its metadata. A job's data is
// copied once, not base64-encoded and scanned as JSON on every read (100
// jobs of 2 MB are listed in one call).
func EncodeJob(j *Job) (string, error) {
	plan, err := json.Marshal(j.Plan)
	if err != nil {
		return "", fmt.Errorf("encode job plan: %w", err)
	}
	b := make([]byte, 0, len(plan)+len(j.Job)+len(j.Metadata)+4*binary64)
	b = protowire.AppendTag(b, jobFieldUID, protowire.VarintType)
	b = protowire.AppendVarint(b, j.UID)
	b = protowire.AppendTag(b, jobFieldPlan, protowire.BytesType)
	b = protowire.AppendBytes(b, plan)
	b = protowire.AppendTag(b, jobFieldJob, protowire.BytesType)
	b = protowire.AppendBytes(b, j.Job)
	b = protowire.AppendTag(b, jobFieldMetadata, protowire.BytesType)
	b = protowire.AppendBytes(b, j.Metadata)
	return string(b), nil
}

// binary64 bounds a tag and a length prefix together.
const binary64 = 2 * binary.MaxVarintLen64

// errJobRecord is a job record that is neither form.
var errJobRecord = errors.New("decode job record: malformed")

// DecodeJob reads a job record, in its wire form (EncodeJob) or in the
// JSON of earlier versions, which starts with '{'. The returned Job and
// Metadata share b's memory.
func DecodeJob(b []byte) (*Job, error) {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		j := new(Job)
		if err := json.Unmarshal(b, j); err != nil {
			return nil, fmt.Errorf("decode job record: %w", err)
		}
		return j, nil
	}
	j := new(Job)
	var plan []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, errJobRecord
		}
		b = b[n:]
		switch {
		case num == jobFieldUID && typ == protowire.VarintType:
			j.UID, n = protowire.ConsumeVarint(b)
		case num == jobFieldPlan && typ == protowire.BytesType:
			plan, n = protowire.ConsumeBytes(b)
		case num == jobFieldJob && typ == protowire.BytesType:
			j.Job, n = protowire.ConsumeBytes(b)
		case num == jobFieldMetadata && typ == protowire.BytesType:
			j.Metadata, n = protowire.ConsumeBytes(b)
		default: // a field of a later version
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, errJobRecord
		}
		b = b[n:]
	}
	if plan == nil {
		return nil, fmt.Errorf("%w: no plan", errJobRecord)
	}
	if err := json.Unmarshal(plan, &j.Plan); err != nil {
		return nil, fmt.Errorf("decode job plan: %w", err)
	}
	return j, nil
}

// DecodeCounter unmarshals a counter record.
func DecodeCounter(b []byte) (*Counter, error) {
	c := new(Counter)
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("decode counter record: %w", err)
	}
	return c, nil
}

// DecodeLeader unmarshals a leadership record.
func DecodeLeader(b []byte) (*Leader, error) {
	l := new(Leader)
	if err := json.Unmarshal(b, l); err != nil {
		return nil, fmt.Errorf("decode leadership record: %w", err)
	}
	return l, nil
}
