// slidingsync.mjs — drives matrix-js-sdk's own SlidingSync class (MSC4186,
// POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync) against
// a homeserver or the edge, and prints what the client saw as JSON lines.
//
// Environment (JSON values are parsed; all but the first four optional):
//   SS_BASE_URL, SS_USER_ID, SS_ACCESS_TOKEN, SS_DEVICE_ID  the session
//   SS_MODE            "raw" (default): SlidingSync alone, extensions
//                      registered here through its registerExtension API;
//                      "sdk": MatrixClient.startClient({slidingSync}), as
//                      Element Web runs it: the SDK registers its own
//                      to_device, account_data, typing and receipts
//                      extensions and builds Room objects ("client" lines).
//   SS_LISTS           {"name": {ranges, timeline_limit, required_state,
//                      filters}}; default one list "all" (0-19, 1 event)
//   SS_ROOM_SUBSCRIPTIONS  ["!room:id", ...] subscribed from the start
//   SS_ROOM_SUBSCRIPTION   {timeline_limit, required_state} for them
//   SS_EXTENSIONS      "to_device,e2ee,account_data,receipts,typing" (any
//                      of; in sdk mode the SDK's own are used)
//   SS_TIMEOUT_MS      the long poll's timeout= (default 10000)
//   SS_THEN            [{"after": N, "ranges": {"all": [[0,49]]}},
//                       {"after": N, "list": {"name": {...}}},
//                       {"after": N, "subscribe": ["!id"]},
//                       {"after": N, "unsubscribe": ["!id"]}]
//                      applied once response N has been processed
//   SS_UNTIL_RESPONSES N; SS_UNTIL_BODY text; SS_UNTIL_ROOM_NAME name;
//   SS_UNTIL_ROOM !id  exit 0 once all the given conditions hold (checked
//                      after each response); none given: one response
//   SS_DEADLINE_MS     exit 2 after this long (default 60000)
//   SS_TRACE           "sync" (default): an "http" line per sliding sync
//                      exchange; "all": every request; "0": none
//   SS_SDK_LOG         the SDK's log level on stderr (default "info")
//
// Lines (every line has "type"; n is the number of responses so far):
//   start      {mode, sdk_version, lists, extensions}
//   sent       {n, seq, method, path, query} — a request is going out
//              (fetch called): the long poll a test sends a message into
//   http       {n, seq, method, path, query, request, status, response |
//              error} — once the exchange is over
//   response   {n, pos, lists (as sent: count, ops...), rooms (ids, in
//              the response's order), extensions (payloads as sent)}
//   room       {n, room_id, name, initial, is_dm, limited, bump_stamp,
//              notification_count, highlight_count, joined_count,
//              invited_count, num_live, prev_batch, heroes, timeline,
//              required_state, invite_state} — the SDK's RoomData event;
//              events as {event_id, type, sender, state_key, body, content}
//   extension  {n, name, data} — the SDK handed the payload to our
//              extension (raw mode)
//   complete   {n, counts: {list: count}, order: [room ids, highest
//              bump_stamp first, of every room seen so far]} — the SDK's
//              Lifecycle COMPLETE; 37.5.0 keeps no room order itself and
//              ignores ops: clients sort by bump_stamp
//   client     {n, rooms: [{room_id, name, membership, bump_stamp,
//              notifications, highlights, timeline}]} — sdk mode: the
//              SDK's Room objects after the response, in order
//   lifecycle  {n, state, error: {status, errcode, message}} — a failed
//              request (the SDK retries; a 400 restarts without pos)
//   done       {n, reason} then exit 0; deadline {n, waiting_for} then
//              exit 2; error {message, stack} then exit 1
import { out } from "./stdio.mjs";
import { createClient } from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import {
    ExtensionState,
    SlidingSync,
    SlidingSyncEvent,
    SlidingSyncState,
} from "matrix-js-sdk/lib/sliding-sync.js";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const env = process.env;
const json = (name, dflt) => {
    if (!env[name]) return dflt;
    try {
        return JSON.parse(env[name]);
    } catch (e) {
        fail(new Error(`${name} is not JSON: ${e.message}`));
    }
};
const need = (name) => env[name] || fail(new Error(`${name} is required`));

function fail(err) {
    out({ type: "error", message: String(err?.message ?? err), stack: err?.stack });
    process.exit(1);
}
process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);

logger.setLevel(env.SS_SDK_LOG || "info");
const sdkVersion = JSON.parse(
    readFileSync(createRequire(import.meta.url).resolve("matrix-js-sdk/package.json"), "utf8"),
).version;

const mode = env.SS_MODE || "raw";
if (mode !== "raw" && mode !== "sdk") fail(new Error(`SS_MODE ${mode}: want raw or sdk`));
const lists = json("SS_LISTS", {
    all: {
        ranges: [[0, 19]],
        timeline_limit: 1,
        required_state: [
            ["m.room.name", ""],
            ["m.room.avatar", ""],
            ["m.room.encryption", ""],
            ["m.room.create", ""],
            ["m.room.member", "$ME"],
        ],
    },
});
const subscriptions = new Set(json("SS_ROOM_SUBSCRIPTIONS", []));
const subscription = json("SS_ROOM_SUBSCRIPTION", { timeline_limit: 10, required_state: [["*", "*"]] });
const extensionNames = (env.SS_EXTENSIONS || "").split(",").filter(Boolean);
const timeoutMS = Number(env.SS_TIMEOUT_MS || 10000);
const deadlineMS = Number(env.SS_DEADLINE_MS || 60000);
const then = json("SS_THEN", []);
const trace = env.SS_TRACE || "sync";
const until = {
    responses: env.SS_UNTIL_RESPONSES ? Number(env.SS_UNTIL_RESPONSES) : undefined,
    body: env.SS_UNTIL_BODY,
    roomName: env.SS_UNTIL_ROOM_NAME,
    room: env.SS_UNTIL_ROOM,
};
if (Object.values(until).every((v) => v === undefined)) until.responses = 1;

let responses = 0;

// Every exchange with the server goes through here: the SDK takes a fetch
// of our choosing, so the bodies it sent and got are printed as they were.
let httpCount = 0;
async function tracingFetch(input, init = {}) {
    const url = new URL(input instanceof Request ? input.url : String(input)); // the SDK passes a URL
    const isSync = url.pathname.endsWith("/org.matrix.simplified_msc3575/sync");
    if (trace === "0" || (trace === "sync" && !isSync)) return fetch(input, init);
    const rec = {
        type: "http",
        n: responses,
        seq: ++httpCount,
        method: init.method || "GET",
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
    };
    if (typeof init.body === "string") {
        try {
            rec.request = JSON.parse(init.body);
        } catch {
            rec.request_text = init.body;
        }
    }
    out({ type: "sent", n: rec.n, seq: rec.seq, method: rec.method, path: rec.path, query: rec.query });
    try {
        const resp = await fetch(input, init);
        const text = await resp.clone().text();
        rec.status = resp.status;
        try {
            rec.response = JSON.parse(text);
        } catch {
            rec.response_text = text;
        }
        out(rec);
        return resp;
    } catch (e) {
        rec.error = `${e.name}: ${e.message}`;
        out(rec);
        throw e;
    }
}

const client = createClient({
    baseUrl: need("SS_BASE_URL"),
    userId: need("SS_USER_ID"),
    accessToken: need("SS_ACCESS_TOKEN"),
    deviceId: need("SS_DEVICE_ID"),
    fetchFn: tracingFetch,
});
const sliding = new SlidingSync(
    client.baseUrl,
    new Map(Object.entries(lists)),
    subscription,
    client,
    timeoutMS,
);

// Our extensions ask what the SDK's own (sliding-sync-sdk.ts, not
// exported) ask, so raw mode sends what Element Web would.
const sdkExtensions = new Set(["to_device", "account_data", "typing", "receipts"]);
function extension(name) {
    let nextBatch = null;
    return {
        name: () => name,
        when: () =>
            name === "to_device" || name === "e2ee" ? ExtensionState.PreProcess : ExtensionState.PostProcess,
        onRequest: async () => {
            if (name === "to_device") return { since: nextBatch ?? undefined, limit: 100, enabled: true };
            return { enabled: true };
        },
        onResponse: async (data) => {
            if (name === "to_device") nextBatch = data?.next_batch ?? null;
            out({ type: "extension", n: responses, name, data });
        },
    };
}
for (const name of extensionNames) {
    if (mode === "sdk" && sdkExtensions.has(name)) continue;
    sliding.registerExtension(extension(name));
}
if (subscriptions.size > 0) sliding.modifyRoomSubscriptions(new Set(subscriptions));

const event = (e) => ({
    event_id: e.event_id,
    type: e.type,
    sender: e.sender,
    state_key: e.state_key,
    body: e.content?.body,
    content: e.content,
});

const bumps = new Map(); // room ID → last bump_stamp seen (null: none yet)
const seen = { bodies: new Set(), names: new Set(), rooms: new Set() };

sliding.on(SlidingSyncEvent.RoomData, (roomId, d) => {
    if (!bumps.has(roomId) || d.bump_stamp != null) bumps.set(roomId, d.bump_stamp ?? bumps.get(roomId) ?? null);
    seen.rooms.add(roomId);
    if (d.name) seen.names.add(d.name);
    for (const e of d.timeline) if (typeof e.content?.body === "string") seen.bodies.add(e.content.body);
    out({
        type: "room",
        n: responses,
        room_id: roomId,
        name: d.name,
        initial: d.initial,
        is_dm: d.is_dm,
        limited: d.limited,
        bump_stamp: d.bump_stamp,
        notification_count: d.notification_count,
        highlight_count: d.highlight_count,
        joined_count: d.joined_count,
        invited_count: d.invited_count,
        num_live: d.num_live,
        prev_batch: d.prev_batch,
        heroes: d.heroes,
        timeline: d.timeline.map(event),
        required_state: d.required_state.map(event),
        invite_state: d.invite_state?.map(event),
    });
});

function order() {
    return [...bumps.entries()]
        .sort(([a, x], [b, y]) => (y ?? -Infinity) - (x ?? -Infinity) || (a < b ? -1 : a > b ? 1 : 0))
        .map(([id]) => id);
}

function clientRooms() {
    return client
        .getRooms()
        .map((r) => ({
            room_id: r.roomId,
            name: r.name,
            membership: r.getMyMembership(),
            bump_stamp: r.getBumpStamp(),
            notifications: r.getUnreadNotificationCount("total"),
            highlights: r.getUnreadNotificationCount("highlight"),
            timeline: r
                .getLiveTimeline()
                .getEvents()
                .map((e) => ({ event_id: e.getId(), type: e.getType(), sender: e.getSender(), body: e.getContent()?.body })),
        }))
        .sort((a, b) => (b.bump_stamp ?? -Infinity) - (a.bump_stamp ?? -Infinity) || (a.room_id < b.room_id ? -1 : 1));
}

function unmet() {
    const waiting = [];
    if (until.responses !== undefined && responses < until.responses) waiting.push(`${until.responses} responses`);
    if (until.body !== undefined && !seen.bodies.has(until.body)) waiting.push(`body ${JSON.stringify(until.body)}`);
    if (until.roomName !== undefined && !seen.names.has(until.roomName))
        waiting.push(`room named ${JSON.stringify(until.roomName)}`);
    if (until.room !== undefined && !seen.rooms.has(until.room)) waiting.push(`room ${until.room}`);
    return waiting;
}

function finish(code, line) {
    out(line);
    sliding.stop();
    if (mode === "sdk") client.stopClient();
    process.exit(code);
}

sliding.on(SlidingSyncEvent.Lifecycle, (state, resp, err) => {
    if (state === SlidingSyncState.RequestFinished) {
        if (err) {
            out({
                type: "lifecycle",
                n: responses,
                state,
                error: { status: err.httpStatus, errcode: err.errcode ?? err.data?.errcode, message: err.message },
            });
            return;
        }
        responses++;
        out({
            type: "response",
            n: responses,
            pos: resp.pos,
            txn_id: resp.txn_id,
            lists: resp.lists,
            rooms: Object.keys(resp.rooms),
            extensions: resp.extensions,
        });
        return;
    }
    if (state !== SlidingSyncState.Complete) return;
    const counts = {};
    for (const key of Object.keys(lists)) counts[key] = sliding.getListData(key)?.joinedCount;
    out({ type: "complete", n: responses, counts, order: order() });
    if (mode === "sdk") out({ type: "client", n: responses, rooms: clientRooms() });
    if (unmet().length === 0) finish(0, { type: "done", n: responses, reason: "conditions met" });
    for (const step of then.filter((s) => s.after === responses)) {
        for (const [key, ranges] of Object.entries(step.ranges ?? {})) sliding.setListRanges(key, ranges);
        for (const [key, list] of Object.entries(step.list ?? {})) {
            lists[key] = list;
            sliding.setList(key, list);
        }
        if (step.subscribe || step.unsubscribe) {
            const next = sliding.getRoomSubscriptions();
            for (const id of step.subscribe ?? []) next.add(id);
            for (const id of step.unsubscribe ?? []) next.delete(id);
            sliding.modifyRoomSubscriptions(next);
        }
    }
});

setTimeout(
    () => finish(2, { type: "deadline", n: responses, after_ms: deadlineMS, waiting_for: unmet() }),
    deadlineMS,
);

out({ type: "start", mode, sdk_version: sdkVersion, lists, subscriptions: [...subscriptions], extensions: extensionNames });
if (mode === "sdk") {
    await client.startClient({ slidingSync: sliding });
} else {
    sliding.start();
}
