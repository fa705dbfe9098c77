package apierr

import (
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Dapr's jobs API error codes (pkg/messages/errorcodes, category "job").
const (
	CodeSchedulerScheduleJob   = "DAPR_SCHEDULER_SCHEDULE_JOB"
	CodeSchedulerJobName       = "DAPR_SCHEDULER_JOB_NAME"
	CodeSchedulerJobNameEmpty  = "DAPR_SCHEDULER_JOB_NAME_EMPTY"
	CodeSchedulerGetJob        = "DAPR_SCHEDULER_GET_JOB"
	CodeSchedulerListJobs      = "DAPR_SCHEDULER_LIST_JOBS"
	CodeSchedulerDeleteJob     = "DAPR_SCHEDULER_DELETE_JOB"
	CodeSchedulerEmpty         = "DAPR_SCHEDULER_EMPTY"
	CodeSchedulerScheduleEmpty = "DAPR_SCHEDULER_SCHEDULE_EMPTY"
)

// jobErr is a jobs API error as daprd builds it: one ErrorInfo whose
// reason is the code, with the app ID and namespace as metadata.
func jobErr(code string, httpStatus int, grpcCode codes.Code, msg string, md map[string]string) *Error {
	return (&Error{Code: code, HTTPStatus: httpStatus, GRPCCode: grpcCode, Message: msg, Category: "job"}).withErrorInfo(code, md)
}

// JobEmpty is a required part of a job request left out: what is "Job",
// "Name" or "Schedule" and code the matching DAPR_SCHEDULER_* code.
func JobEmpty(what, code string, md map[string]string) *Error {
	return jobErr(code, http.StatusBadRequest, codes.InvalidArgument, what+" is empty", md)
}

// JobNameInBody is an HTTP job request naming the job in its body too.
func JobNameInBody(md map[string]string) *Error {
	return jobErr(CodeSchedulerJobName, http.StatusBadRequest, codes.InvalidArgument, "Set the job name in the url only", md)
}

// ScheduleJob is a failed ScheduleJob: the scheduler's gRPC code is kept
// (a bad schedule is InvalidArgument, 400), an unknown one is Internal.
func ScheduleJob(err error, md map[string]string) *Error {
	code := status.Code(err)
	if code == codes.Unknown {
		code = codes.Internal
	}
	return jobErr(CodeSchedulerScheduleJob, HTTPStatusFromCode(code), code, "failed to schedule job due to: "+err.Error(), md)
}

// GetJob is a failed GetJob (a missing job included: 500, as daprd).
func GetJob(err error, md map[string]string) *Error {
	return jobErr(CodeSchedulerGetJob, http.StatusInternalServerError, codes.Internal, "failed to get job due to: "+err.Error(), md)
}

// ListJobs is a failed ListJobs.
func ListJobs(err error, md map[string]string) *Error {
	return jobErr(CodeSchedulerListJobs, http.StatusInternalServerError, codes.Internal, "failed to list jobs due to: "+err.Error(), md)
}

// DeleteJob is a failed DeleteJob or DeleteJobsByPrefix.
func DeleteJob(err error, md map[string]string) *Error {
	return jobErr(CodeSchedulerDeleteJob, http.StatusInternalServerError, codes.Internal, "failed to delete job due to: "+err.Error(), md)
}
