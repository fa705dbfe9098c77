// A workflow app written with the Dapr JS SDK's workflow runtime
// (@dapr/dapr WorkflowRuntime) for test/e2e/workflow_jssdk_test.go. Its
// worker connects to the sidecar at DAPR_HOST:DAPR_GRPC_PORT and registers:
//
//   chain      five add1 activities in a row: n -> n+5
//   timer      a durable timer of the input's seconds, then "done"
//   waitEvent  event "approve" against a timer of the input's seconds
//              (whenAny; the JS SDK's waitForExternalEvent has no timeout):
//              the event's data, or "timeout"
//   parent     chain as a sub-orchestration ({id}-child), doubled: (n+5)*2
//   counter    continues as new with n+1 until n is 5, then returns n
//   long       waits for event "go" and returns its data
//   flaky      flakyAct, which fails twice per instance, under a retry
//              policy of 5 attempts 200 ms apart (doubling). The JS SDK 3.18
//              has no RetryPolicy option on callActivity, so the policy is
//              the workflow's own loop of durable timers: "attempt 3"
//
// The app drives the workflows with the SDK's DaprWorkflowClient on
// APP_PORT (HTTP, JSON bodies), so that the test exercises both halves of
// the SDK:
//
//   POST /start      {name, id, input}        scheduleNewWorkflow
//   GET  /wait/{id}                            waitForWorkflowCompletion
//   GET  /started/{id}                         waitForWorkflowStart
//   GET  /state/{id}                           getWorkflowState (404: none)
//   POST /raise/{id} {event, data}             raiseEvent
//   POST /suspend/{id}, /resume/{id}, /terminate/{id}, /purge/{id}
//   GET  /runs                                 {"activity instance step": runs}
//
// A state answers as {name, instanceId, status, input, output, failure}.
const http = require("http");
const { WorkflowRuntime, DaprWorkflowClient, WorkflowRuntimeStatus } = require("@dapr/dapr");

const runs = {};
const flakyAttempts = {};

function record(activity, instance, step) {
  const key = `${activity} ${instance} ${step}`;
  runs[key] = (runs[key] || 0) + 1;
}

function add1(ctx, input) {
  record("add1", input.instance, input.step);
  return input.value + 1;
}

function flakyAct(ctx, input) {
  record("flakyAct", input.instance, input.step);
  const n = (flakyAttempts[input.instance] || 0) + 1;
  flakyAttempts[input.instance] = n;
  if (n <= 2) {
    throw new Error(`attempt ${n} fails on purpose`);
  }
  return `attempt ${n}`;
}

const chain = async function* (ctx, n) {
  const instance = ctx.getWorkflowInstanceId();
  for (let step = 0; step < 5; step++) {
    n = yield ctx.callActivity(add1, { instance, step, value: n });
  }
  return n;
};

const timer = async function* (ctx, secs) {
  yield ctx.createTimer(secs);
  return "done";
};

const waitEvent = async function* (ctx, secs) {
  const event = ctx.waitForExternalEvent("approve");
  const winner = yield ctx.whenAny([event, ctx.createTimer(secs)]);
  if (winner === event) {
    return event.getResult();
  }
  return "timeout";
};

const parent = async function* (ctx, n) {
  const out = yield ctx.callChildWorkflow(chain, n, ctx.getWorkflowInstanceId() + "-child");
  return out * 2;
};

const counter = async function* (ctx, n) {
  if (n < 5) {
    ctx.continueAsNew(n + 1, false);
    return;
  }
  return n;
};

const long = async function* (ctx) {
  const data = yield ctx.waitForExternalEvent("go");
  return data;
};

// The retry policy: maxAttempts 5, first interval 200 ms, coefficient 2.
const flaky = async function* (ctx) {
  const instance = ctx.getWorkflowInstanceId();
  let interval = 0.2;
  for (let attempt = 0; ; attempt++) {
    try {
      return yield ctx.callActivity(flakyAct, { instance, step: attempt });
    } catch (err) {
      if (attempt + 1 >= 5) {
        throw err;
      }
    }
    yield ctx.createTimer(interval);
    interval *= 2;
  }
};

function stateJSON(s) {
  if (!s) {
    return null;
  }
  return {
    name: s.name,
    instanceId: s.instanceId,
    status: WorkflowRuntimeStatus[s.runtimeStatus],
    input: s.serializedInput,
    output: s.serializedOutput,
    failure: s.workflowFailureDetails ? s.workflowFailureDetails.getMessage() : undefined,
  };
}

async function main() {
  const runtime = new WorkflowRuntime();
  const workflows = { chain, timer, waitEvent, parent, counter, long, flaky };
  for (const [name, wf] of Object.entries(workflows)) {
    runtime.registerWorkflowWithName(name, wf);
  }
  runtime.registerActivity(add1).registerActivity(flakyAct);
  await runtime.start();
  const client = new DaprWorkflowClient();

  const routes = {
    "POST /start": async (_, b) => ({ id: await client.scheduleNewWorkflow(b.name, b.input, b.id) }),
    "GET /wait": async (id) => stateJSON(await client.waitForWorkflowCompletion(id, true, 120)),
    "GET /started": async (id) => stateJSON(await client.waitForWorkflowStart(id, true, 60)),
    "GET /state": async (id) => stateJSON(await client.getWorkflowState(id, true)),
    "POST /raise": async (id, b) => client.raiseEvent(id, b.event, b.data),
    "POST /suspend": async (id) => client.suspendWorkflow(id),
    "POST /resume": async (id) => client.resumeWorkflow(id),
    "POST /terminate": async (id) => client.terminateWorkflow(id, undefined),
    "POST /purge": async (id) => ({ purged: await client.purgeWorkflow(id) }),
    "GET /runs": async () => runs,
  };
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", async () => {
      const [, route, id] = req.url.split("/");
      const handler = routes[`${req.method} /${route}`];
      if (!handler) {
        res.writeHead(404).end();
        return;
      }
      try {
        const out = await handler(decodeURIComponent(id || ""), body ? JSON.parse(body) : {});
        if (out === null) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(out ?? {}));
      } catch (err) {
        res.writeHead(500).end(String(err && err.stack ? err.stack : err));
      }
    });
  });
  server.listen(Number(process.env.APP_PORT), "127.0.0.1", () => console.log("workflow app listening"));
  const stop = async () => {
    server.close();
    await runtime.stop();
    await client.stop();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
