// Package slidingsync serves Simplified Sliding Sync (MSC4186) on behalf of
// a homeserver that speaks only the v2 /sync API, as Dendrite v0.13 does.
//
// Element X syncs only through MSC4186, and Dendrite will not grow it. The
// edge already terminates every client request, so it answers
// POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync itself,
// from what one v2 poller per device has seen: the poller calls the
// homeserver's /sync with that device's own access token, so an answer never
// carries anything the homeserver did not give that token.
//
// What the pollers have seen lives in a Store (SQLite by default, PostgreSQL
// when several edges share one), so an answer after the first never waits
// for a full v2 sync, to-device messages survive a restart (they are
// committed before the poll that acknowledges them to the homeserver), and
// a device is polled by one edge at a time (a lease in the store). Access
// tokens are held in memory only.
package slidingsync
