// An actor app written with the Dapr JS SDK (@dapr/dapr, AbstractActor), for
// test/e2e/actors_sdk_test.go. It hosts actor type JSCounter:
//
//   incr         adds 1 to a count kept in the app's memory and returns it,
//                checking that no two turns of one actor overlap
//   add(n)       adds n to "count" in the SDK's state manager (saved by the
//                SDK after the call) and returns the sum
//   get          reads "count" through the state manager
//   startTimer   registers timer "tick" (dueTime 0, period 1 s) calling
//                onTimer with its data; onTimer removes it after 3 firings
//   startRemind  registers reminder "ping" (dueTime 1 s, period 1 s);
//                receiveReminder records its data and removes it after 2
//   reenter      calls incr on its own actor through the sidecar's HTTP API
//                with the Dapr-Reentrancy-Id of its own call
//
// The app takes APP_PORT, DAPR_HTTP_PORT and IDLE_TIMEOUT from the
// environment and serves GET /report: what it saw, as JSON.
"use strict";
const { AsyncLocalStorage } = require("node:async_hooks");
const express = require("express");
const { AbstractActor, CommunicationProtocolEnum, DaprServer, Temporal } = require("@dapr/dapr");

const report = { counts: {}, overlaps: 0, deactivated: [], fired: [] };
const inTurn = new Set();
const firings = {};
const reentrancyId = new AsyncLocalStorage();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class JSCounter extends AbstractActor {
  async incr() {
    const id = this.getActorId().getId();
    if (inTurn.has(id)) report.overlaps++;
    inTurn.add(id);
    await sleep(1); // a turn long enough for an overlap to show
    report.counts[id] = (report.counts[id] || 0) + 1;
    inTurn.delete(id);
    return report.counts[id];
  }

  async add(n) {
    const sm = this.getStateManager();
    const [has, cur] = await sm.tryGetState("count");
    const sum = (has ? cur : 0) + n;
    await sm.setState("count", sum);
    return sum;
  }

  async get() {
    const [has, cur] = await this.getStateManager().tryGetState("count");
    return has ? cur : 0;
  }

  async startTimer(data) {
    await this.registerActorTimer("tick", "onTimer", Temporal.Duration.from({ seconds: 0 }), Temporal.Duration.from({ seconds: 1 }), undefined, data);
  }

  async onTimer(data) {
    const id = this.getActorId().getId();
    report.fired.push(`timer ${id} ${JSON.stringify(data)}`);
    firings[`timer ${id}`] = (firings[`timer ${id}`] || 0) + 1;
    if (firings[`timer ${id}`] === 3) await this.unregisterActorTimer("tick");
  }

  async startRemind(data) {
    await this.registerActorReminder("ping", Temporal.Duration.from({ seconds: 1 }), Temporal.Duration.from({ seconds: 1 }), undefined, data);
  }

  async receiveReminder(data) {
    const id = this.getActorId().getId();
    report.fired.push(`reminder ${id} ${JSON.stringify(data)}`);
    firings[`reminder ${id}`] = (firings[`reminder ${id}`] || 0) + 1;
    if (firings[`reminder ${id}`] === 2) await this.unregisterActorReminder("ping");
  }

  async reenter() {
    const id = this.getActorId().getId();
    const headers = {};
    const rid = reentrancyId.getStore();
    if (rid) headers["Dapr-Reentrancy-Id"] = rid;
    const res = await fetch(`http://127.0.0.1:${process.env.DAPR_HTTP_PORT}/v1.0/actors/JSCounter/${id}/method/incr`, { method: "POST", headers });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`nested call: ${res.status} ${body}`);
    return JSON.parse(body);
  }

  async onDeactivate() {
    report.deactivated.push(this.getActorId().getId());
  }
}

async function main() {
  const app = express();
  app.get("/report", (_req, res) => res.json(report));
  // The SDK does not pass the reentrancy ID on to actor methods: keep it
  // for the duration of the request.
  app.use((req, _res, next) => reentrancyId.run(req.get("Dapr-Reentrancy-Id") || "", next));
  const server = new DaprServer({
    serverHost: "127.0.0.1",
    serverPort: process.env.APP_PORT,
    serverHttp: app,
    communicationProtocol: CommunicationProtocolEnum.HTTP,
    clientOptions: {
      daprHost: "127.0.0.1",
      daprPort: process.env.DAPR_HTTP_PORT,
      communicationProtocol: CommunicationProtocolEnum.HTTP,
      actor: { actorIdleTimeout: process.env.IDLE_TIMEOUT || "", reentrancy: { enabled: true } },
    },
  });
  await server.actor.init();
  await server.actor.registerActor(JSCounter);
  await server.start();
  console.log(`jsactors: serving JSCounter on port ${process.env.APP_PORT}`);
}

// The SDK throws, unhandled, when the sidecar deactivates an actor the SDK
// never activated (one whose first call failed): log it rather than exit.
process.on("unhandledRejection", (err) => console.error("unhandled:", err));

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
