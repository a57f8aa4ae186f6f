// stdio.mjs — import it first: stdout is the script's JSON lines, so every
// console method (the SDK's logger calls console.log, .info and .debug)
// writes to stderr instead, and out() is the one way to print a line.
//
// ES modules are evaluated in import order, so a script that imports this
// before "matrix-js-sdk" has console redirected before the SDK loads.

for (const m of ["log", "info", "debug", "warn", "trace"]) {
    console[m] = console.error.bind(console);
}

// out prints obj as one JSON line on stdout. Writes to a pipe are
// synchronous in Node on Linux, so a line printed before process.exit is
// not lost.
export function out(obj) {
    process.stdout.write(JSON.stringify(obj) + "\n");
}
