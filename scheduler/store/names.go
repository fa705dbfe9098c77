package store

import (
	"errors"
	"strings"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
)

// sep separates the parts of a job name, as in Dapr.
const sep = "||"

// JobName is the full name of the job called name with meta's target:
// "app||ns||app id||name" or "actorreminder||ns||type||id||name".
func JobName(name string, meta *schedulerv1.JobMetadata) (string, error) {
	p, err := TargetPrefix(meta)
	if err != nil {
		return "", err
	}
	return p + name, nil
}

// TargetPrefix is the prefix of the names of meta's target's jobs, ending
// in "||".
func TargetPrefix(meta *schedulerv1.JobMetadata) (string, error) {
	switch meta.GetTarget().GetType().(type) {
	case *schedulerv1.JobTargetMetadata_Actor:
		a := meta.GetTarget().GetActor()
		return strings.Join([]string{"actorreminder", meta.GetNamespace(), a.GetType(), a.GetId()}, sep) + sep, nil
	case *schedulerv1.JobTargetMetadata_Job:
		return strings.Join([]string{"app", meta.GetNamespace(), meta.GetAppId()}, sep) + sep, nil
	}
	return "", errors.New("job metadata has no target: set target.job or target.actor")
}

// ListPrefix is the prefix Dapr's ListJobs and DeleteByMetadata use: an
// actor target without an ID means every ID of the type; asPrefix leaves
// the last part open ("actorreminder||ns||type||id" matches id and idx).
func ListPrefix(meta *schedulerv1.JobMetadata, asPrefix bool) (string, error) {
	var s string
	switch meta.GetTarget().GetType().(type) {
	case *schedulerv1.JobTargetMetadata_Actor:
		a := meta.GetTarget().GetActor()
		s = strings.Join([]string{"actorreminder", meta.GetNamespace(), a.GetType()}, sep)
		if a.GetId() != "" {
			s += sep + a.GetId()
		}
	case *schedulerv1.JobTargetMetadata_Job:
		s = strings.Join([]string{"app", meta.GetNamespace(), meta.GetAppId()}, sep)
	default:
		return "", errors.New("job metadata has no target: set target.job or target.actor")
	}
	if !asPrefix {
		s += sep
	}
	return s, nil
}

// NamespacePrefixes are the name prefixes of every job of a namespace.
func NamespacePrefixes(namespace string) []string {
	return []string{"actorreminder" + sep + namespace + sep, "app" + sep + namespace + sep}
}
