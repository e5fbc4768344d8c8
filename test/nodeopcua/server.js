#!/usr/bin/env node
// node-opcua simulation server for uamirror tests.
//
// stdout carries exactly one line, written once the server listens:
//     nodeopcua ready endpoint=opc.tcp://127.0.0.1:PORT
// Everything else (node-opcua's own logging included) goes to stderr.
//
// Control lines on stdin (one per line):
//     servicelevel N     set Server/ServiceLevel (0..255); answered on stderr
//                        with "nodeopcua ack servicelevel N"
//     retype ID TYPE     replace variable ns=<ns>;s=ID of the Typed object by one
//                        of DataType TYPE (a PLC download changing a node's
//                        type); answered with "nodeopcua ack retype ID TYPE"
//     exit               shut down
// The process exits on SIGTERM, SIGINT or stdin EOF (so a dead parent leaves
// no orphan), unless --ignore-stdin-eof is given.
//
// Options: `node server.js --help`. Every option can also be given through the
// environment as NODEOPCUA_<NAME> (upper case, dashes as underscores), e.g.
// NODEOPCUA_VARS=1000; a command-line flag wins.
"use strict";

// node-opcua's logger writes with console.log: route every console method to
// stderr before node-opcua is loaded, so stdout only ever carries our line.
const util = require("node:util");
for (const m of ["log", "info", "warn", "error", "debug", "trace", "dir"]) {
    console[m] = (...args) => process.stderr.write(`${util.format(...args)}\n`);
}

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");

const HELP = `usage: node server.js [options]
  --port N                  TCP port on 127.0.0.1; 0 = any free port (default 0)
  --vars N                  number of variables ns=<ns>;s=v0..v<N-1> (default 16)
  --type NAME               all variables of this type (default: the mixed cycle)
                            one of: ${"Boolean SByte Byte Int16 UInt16 Int32 UInt32 Int64 UInt64 Float Double String DateTime ByteString Double[] Int32[]"}
  --rate R                  total value changes per second over all variables (default 0)
  --ns URI                  namespace URI (default urn:uamirror:nodeopcua)
  --pki DIR                 PKI folder of this instance (default: a temp dir removed on exit)
  --security BOOL           also offer Basic256Sha256 Sign and SignAndEncrypt (default true)
  --aes BOOL                with --security, also offer Aes128_Sha256_RsaOaep and Aes256_Sha256_RsaPss (default false)
  --auto-accept BOOL        trust unknown client certificates (default true)
  --allow-anonymous BOOL    accept anonymous sessions (default true)
  --service-level N         initial ServiceLevel (default 255)
  --max-notifications N     notifications per Publish response cap (default 10000; node-opcua's own is 1000)
  --max-sessions N          (default 50)
  --max-array-length N      longest array the server decodes and advertises (ServerCapabilities); 0 = node-opcua's own
  --max-string-length N     longest String and ByteString, likewise; 0 = node-opcua's own
  --max-nodes-per-write N   OperationLimits.MaxNodesPerWrite, enforced (BadTooManyOperations); 0 = node-opcua's own
  --max-nodes-per-read N    OperationLimits.MaxNodesPerRead, likewise
  --hide-limits             advertise 0 (no limit) for the five limits above while enforcing them
  --ignore-stdin-eof        keep running when stdin closes (for manual runs)
env NODEOPCUA_PASSWORD      if set, user "operator" with this password may log in
`;

const DEFAULTS = {
    port: "0",
    vars: "16",
    type: "",
    rate: "0",
    ns: "urn:uamirror:nodeopcua",
    pki: "",
    security: "true",
    aes: "false",
    "auto-accept": "true",
    "allow-anonymous": "true",
    "service-level": "255",
    "max-notifications": "10000",
    "max-sessions": "50",
    "max-array-length": "0",
    "max-string-length": "0",
    "max-nodes-per-write": "0",
    "max-nodes-per-read": "0",
    "hide-limits": "false",
    "ignore-stdin-eof": "false"
};

function fail(msg) {
    process.stderr.write(`nodeopcua: ${msg}\n`);
    process.exit(2);
}

function parseArgs(argv) {
    const opts = {};
    for (const k of Object.keys(DEFAULTS)) {
        const env = process.env[`NODEOPCUA_${k.toUpperCase().replace(/-/g, "_")}`];
        opts[k] = env !== undefined && env !== "" ? env : DEFAULTS[k];
    }
    for (let i = 0; i < argv.length; i++) {
        let a = argv[i];
        if (a === "-h" || a === "--help") {
            process.stderr.write(HELP);
            process.exit(0);
        }
        if (!a.startsWith("--")) fail(`unexpected argument ${a}`);
        a = a.slice(2);
        let value;
        const eq = a.indexOf("=");
        if (eq >= 0) {
            value = a.slice(eq + 1);
            a = a.slice(0, eq);
        }
        if (a.startsWith("no-") && !(a in DEFAULTS) && a.slice(3) in DEFAULTS && value === undefined) {
            a = a.slice(3);
            value = "false";
        }
        if (!(a in DEFAULTS)) fail(`unknown option --${a}`);
        if (value === undefined) {
            const boolish = DEFAULTS[a] === "true" || DEFAULTS[a] === "false";
            if (boolish && (i + 1 >= argv.length || argv[i + 1].startsWith("--"))) {
                value = "true";
            } else {
                if (i + 1 >= argv.length) fail(`--${a} needs a value`);
                value = argv[++i];
            }
        }
        opts[a] = value;
    }
    const bool = (k) => {
        const v = String(opts[k]).toLowerCase();
        if (["1", "true", "yes", "on"].includes(v)) return true;
        if (["0", "false", "no", "off"].includes(v)) return false;
        fail(`--${k}: not a boolean: ${opts[k]}`);
    };
    const int = (k, min, max) => {
        const n = Number(opts[k]);
        if (!Number.isInteger(n) || n < min || n > max) fail(`--${k}: want an integer in [${min}, ${max}], got ${opts[k]}`);
        return n;
    };
    const rate = Number(opts.rate);
    if (!Number.isFinite(rate) || rate < 0) fail(`--rate: want a number >= 0, got ${opts.rate}`);
    return {
        port: int("port", 0, 65535),
        vars: int("vars", 0, 1000000),
        type: opts.type,
        rate,
        ns: opts.ns,
        pki: opts.pki,
        security: bool("security"),
        aes: bool("aes"),
        autoAccept: bool("auto-accept"),
        allowAnonymous: bool("allow-anonymous"),
        serviceLevel: int("service-level", 0, 255),
        maxNotifications: int("max-notifications", 1, 1000000),
        maxSessions: int("max-sessions", 1, 10000),
        maxArrayLength: int("max-array-length", 0, 1 << 30),
        maxStringLength: int("max-string-length", 0, 1 << 30),
        maxNodesPerWrite: int("max-nodes-per-write", 0, 1000000),
        maxNodesPerRead: int("max-nodes-per-read", 0, 1000000),
        hideLimits: bool("hide-limits"),
        ignoreStdinEOF: bool("ignore-stdin-eof"),
        password: process.env.NODEOPCUA_PASSWORD || ""
    };
}

const opts = parseArgs(process.argv.slice(2));
const tRequire = Date.now();

const {
    OPCUAServer,
    OPCUACertificateManager,
    SecurityPolicy,
    MessageSecurityMode,
    DataType,
    VariantArrayType,
    Variant,
    StatusCodes,
    VariableIds,
    Subscription
} = require("node-opcua");
const requireMs = Date.now() - tRequire;

// Types by index i, cycling in exactly this order.
const TYPES = [
    "Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
    "Float", "Double", "String", "DateTime", "ByteString", "Double[]", "Int32[]"
];
if (opts.type && !TYPES.includes(opts.type)) fail(`--type: unknown type ${opts.type}`);

const DATE_BASE = Date.UTC(2024, 0, 1);
const TWO32 = 4294967296;

// value(type, i, s): the deterministic s-th value of variable i (s = 0 initial).
function value(type, i, s) {
    switch (type) {
        case "Boolean": return s % 2 === 1;
        case "SByte": return ((i + s) % 256) - 128;
        case "Byte": return (i + s) % 256;
        case "Int16": return ((i + s) % 65536) - 32768;
        case "UInt16": return (i + s) % 65536;
        case "Int32": return ((i + s) % TWO32) - 2147483648;
        case "UInt32": return (i + s) % TWO32;
        // node-opcua carries 64-bit integers as [high, low] 32-bit words.
        case "Int64": return [0, (i + s) % TWO32];
        case "UInt64": return [0, (i + s) % TWO32];
        // multiples of 1/4 below 2^22 are exact in float32
        case "Float": return ((i + s) % 4194304) / 4;
        case "Double": return i + s / 4;
        case "String": return `v${i}#${s}`;
        case "DateTime": return new Date(DATE_BASE + (i + s) * 1000);
        case "ByteString": {
            const b = Buffer.alloc(8);
            b.writeUInt32BE(i >>> 0, 0);
            b.writeUInt32BE(s % TWO32, 4);
            return b;
        }
        case "Double[]": return [s, i, s / 4];
        case "Int32[]": return [s % 2147483647, i, -(s % 2147483647)];
    }
    throw new Error(`no type ${type}`);
}

function variant(type, i, s) {
    const isArray = type.endsWith("[]");
    const base = isArray ? type.slice(0, -2) : type;
    let v = value(type, i, s);
    if (base === "Double" && isArray) v = Float64Array.from(v);
    if (base === "Int32" && isArray) v = Int32Array.from(v);
    return new Variant({
        dataType: DataType[base],
        arrayType: isArray ? VariantArrayType.Array : VariantArrayType.Scalar,
        value: v
    });
}

let pkiDir = opts.pki;
let removePki = false;
if (!pkiDir) {
    pkiDir = fs.mkdtempSync(path.join(os.tmpdir(), "nodeopcua-pki-"));
    removePki = true;
}
pkiDir = path.resolve(pkiDir);

let server;
let ticker;
let exiting = false;

async function shutdown(code, why) {
    if (exiting) return;
    exiting = true;
    process.stderr.write(`nodeopcua: shutting down (${why})\n`);
    if (ticker) clearInterval(ticker);
    // A hung shutdown must not keep the process alive.
    setTimeout(() => finish(code), 2000).unref();
    try {
        if (server) await server.shutdown(0);
    } catch (err) {
        process.stderr.write(`nodeopcua: shutdown error: ${err && err.message}\n`);
    }
    finish(code);
}

function finish(code) {
    if (removePki) {
        try {
            fs.rmSync(pkiDir, { recursive: true, force: true });
        } catch (_) { /* ignore */ }
    }
    process.exit(code);
}

process.on("SIGTERM", () => shutdown(0, "SIGTERM"));
process.on("SIGINT", () => shutdown(0, "SIGINT"));
process.on("uncaughtException", (err) => {
    process.stderr.write(`nodeopcua: uncaught exception: ${err && err.stack}\n`);
    shutdown(1, "uncaught exception");
});
process.on("unhandledRejection", (err) => {
    process.stderr.write(`nodeopcua: unhandled rejection: ${err && (err.stack || err)}\n`);
});

async function main() {
    const t0 = Date.now();
    Subscription.maxNotificationPerPublishHighLimit = opts.maxNotifications;

    const serverCertificateManager = new OPCUACertificateManager({
        rootFolder: path.join(pkiDir, "server"),
        automaticallyAcceptUnknownCertificate: opts.autoAccept,
        name: "PKI"
    });
    // Without its own folder the user-token PKI would default to one shared
    // per-user folder (~/.config/node-opcua-default/UserPKI).
    const userCertificateManager = new OPCUACertificateManager({
        rootFolder: path.join(pkiDir, "user"),
        automaticallyAcceptUnknownCertificate: false,
        name: "UserPKI"
    });

    const securityPolicies = [SecurityPolicy.None];
    const securityModes = [MessageSecurityMode.None];
    if (opts.security) {
        securityPolicies.push(SecurityPolicy.Basic256Sha256);
        securityModes.push(MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt);
        if (opts.aes) {
            securityPolicies.push(SecurityPolicy.Aes128_Sha256_RsaOaep, SecurityPolicy.Aes256_Sha256_RsaPss);
        }
    }

    const userManager = {
        isValidUser: (userName, password) =>
            opts.password !== "" && userName === "operator" && password === opts.password
    };

    server = new OPCUAServer({
        port: opts.port,
        host: "127.0.0.1",
        hostname: "127.0.0.1",
        securityPolicies,
        securityModes,
        allowAnonymous: opts.allowAnonymous,
        serverCertificateManager,
        userCertificateManager,
        userManager,
        maxConnectionsPerEndpoint: opts.maxSessions,
        serverCapabilities: Object.assign(
            { maxSessions: opts.maxSessions },
            opts.maxArrayLength > 0 ? { maxArrayLength: opts.maxArrayLength } : {},
            opts.maxStringLength > 0 ? { maxStringLength: opts.maxStringLength, maxByteStringLength: opts.maxStringLength } : {},
            opts.maxNodesPerWrite > 0 || opts.maxNodesPerRead > 0
                ? {
                      operationLimits: Object.assign(
                          opts.maxNodesPerWrite > 0 ? { maxNodesPerWrite: opts.maxNodesPerWrite } : {},
                          opts.maxNodesPerRead > 0 ? { maxNodesPerRead: opts.maxNodesPerRead } : {}
                      )
                  }
                : {}
        ),
        serverInfo: {
            applicationUri: "urn:uamirror:nodeopcua:server",
            productUri: "urn:uamirror:nodeopcua",
            applicationName: { text: "uamirror node-opcua test server", locale: "en" }
        },
        buildInfo: {
            productName: "uamirror-nodeopcua",
            softwareVersion: require("node-opcua/package.json").version
        },
        isAuditing: false
    });

    // Decoding limits: what the server advertises is also what it decodes
    // (a longer array or string in a request fails to decode).
    if (opts.maxArrayLength > 0) {
        require("node-opcua-binary-stream").BinaryStream.maxArrayLength = opts.maxArrayLength;
        Variant.maxArrayLength = opts.maxArrayLength;
    }
    if (opts.maxStringLength > 0) {
        const { BinaryStream } = require("node-opcua-binary-stream");
        BinaryStream.maxStringLength = opts.maxStringLength;
        BinaryStream.maxByteStringLength = opts.maxStringLength;
    }
    await server.initialize();
    if (opts.hideLimits) {
        // A server that refuses large requests without saying so.
        for (const i of [VariableIds.Server_ServerCapabilities_MaxArrayLength, VariableIds.Server_ServerCapabilities_MaxStringLength,
            VariableIds.Server_ServerCapabilities_MaxByteStringLength, VariableIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerWrite,
            VariableIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead]) {
            const n = server.engine.addressSpace.findNode(`ns=0;i=${i}`);
            if (n) n.bindVariable({ get: () => new Variant({ dataType: DataType.UInt32, value: 0 }) }, true);
        }
    }
    const tInit = Date.now();
    const addressSpace = server.engine.addressSpace;
    const namespace = addressSpace.registerNamespace(opts.ns);

    // ServiceLevel is bound to a getter returning 255 by node-opcua; rebind it
    // to a plain value so that changes are pushed to subscribers at once.
    const serviceLevel = addressSpace.findNode(`ns=0;i=${VariableIds.Server_ServiceLevel}`);
    serviceLevel.bindVariable({ dataType: DataType.Byte, value: opts.serviceLevel }, true);
    const setServiceLevel = (n) =>
        serviceLevel.setValueFromSource({ dataType: DataType.Byte, value: n }, StatusCodes.Good, new Date());

    const sim = namespace.addObject({
        organizedBy: addressSpace.rootFolder.objects,
        browseName: "Sim",
        nodeId: "s=Sim"
    });

    const vars = new Array(opts.vars);
    const types = new Array(opts.vars);
    const seq = new Array(opts.vars).fill(0);
    for (let i = 0; i < opts.vars; i++) {
        const type = opts.type || TYPES[i % TYPES.length];
        const isArray = type.endsWith("[]");
        types[i] = type;
        vars[i] = namespace.addVariable({
            componentOf: sim,
            nodeId: `s=v${i}`,
            browseName: `v${i}`,
            dataType: isArray ? type.slice(0, -2) : type,
            valueRank: isArray ? 1 : -1,
            arrayDimensions: isArray ? [0] : null,
            accessLevel: "CurrentRead | CurrentWrite",
            userAccessLevel: "CurrentRead | CurrentWrite",
            minimumSamplingInterval: 0, // exception-based: every change is reported
            value: variant(type, i, 0)
        });
    }

    // Typed: variables of DataType subtypes and edge values (issue 14):
    //   t.duration   Duration (a Double subtype)      1.5
    //   t.utctime    UtcTime (a DateTime subtype)     2024-01-01
    //   t.enum       ServerState (an enumeration)     0 (Running), as Int32
    //   t.date9999   DateTime                         9999-12-31T23:59:59.999Z
    //   t.date1601   DateTime                         1601-01-01 (the wire's 0)
    //   t.dateOld    DateTime                         1650-06-01
    //   t.double     Double                           0 (a target to retype)
    //   t.bytes      ByteString                       0 bytes
    //   t.any        BaseDataType (any type)          0 (Double)
    const typed = namespace.addObject({
        organizedBy: addressSpace.rootFolder.objects,
        browseName: "Typed",
        nodeId: "s=Typed"
    });
    const TYPED_VALUES = {
        Double: [DataType.Double, 0], Float: [DataType.Float, 0], Int32: [DataType.Int32, 0],
        Duration: [DataType.Double, 1.5], UtcTime: [DataType.DateTime, new Date(Date.UTC(2024, 0, 1))],
        ServerState: [DataType.Int32, 0], DateTime: [DataType.DateTime, new Date(Date.UTC(2024, 0, 1))],
        ByteString: [DataType.ByteString, Buffer.alloc(0)],
        BaseDataType: [DataType.Double, 0]
    };
    const addTyped = (id, type, value) => {
        const [vdt, v0] = TYPED_VALUES[type];
        return namespace.addVariable({
            componentOf: typed,
            nodeId: `s=${id}`,
            browseName: id,
            dataType: type,
            valueRank: -1,
            accessLevel: "CurrentRead | CurrentWrite",
            userAccessLevel: "CurrentRead | CurrentWrite",
            minimumSamplingInterval: 0,
            value: new Variant({ dataType: vdt, value: value === undefined ? v0 : value })
        });
    };
    addTyped("t.duration", "Duration");
    addTyped("t.utctime", "UtcTime");
    addTyped("t.enum", "ServerState");
    addTyped("t.date9999", "DateTime", new Date(Date.UTC(9999, 11, 31, 23, 59, 59, 999)));
    addTyped("t.date1601", "DateTime", new Date(Date.UTC(1601, 0, 1)));
    addTyped("t.dateOld", "DateTime", new Date(Date.UTC(1650, 5, 1)));
    addTyped("t.double", "Double");
    addTyped("t.bytes", "ByteString");
    addTyped("t.any", "BaseDataType");
    const retype = (id, type) => {
        if (!TYPED_VALUES[type]) throw new Error(`retype: no type ${type}`);
        const old = addressSpace.findNode(`ns=${namespace.index};s=${id}`);
        if (!old) throw new Error(`retype: no node ${id}`);
        addressSpace.deleteNode(old);
        addTyped(id, type);
    };

    const tStart = Date.now();
    await server.start();
    const port = server.endpoints[0].port;

    if (opts.rate > 0 && opts.vars > 0) {
        // Changes are spread round-robin over the variables: change number c
        // goes to variable c mod N, which takes its next value in sequence.
        // A tick that finds the schedule more than 100 ms behind (the event
        // loop stalled) drops the backlog rather than bursting to catch up.
        const start = process.hrtime.bigint();
        const cap = Math.max(1, Math.ceil(opts.rate / 10));
        let slots = 0; // schedule slots used or dropped
        let changes = 0;
        ticker = setInterval(() => {
            const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
            let due = Math.floor(elapsed * opts.rate) - slots;
            if (due > cap) {
                slots += due - cap;
                due = cap;
            }
            slots += due;
            const now = new Date();
            for (let k = 0; k < due; k++, changes++) {
                const i = changes % opts.vars;
                seq[i] += 1;
                vars[i].setValueFromSource(variant(types[i], i, seq[i]), StatusCodes.Good, now);
            }
        }, 10);
    }

    const rl = readline.createInterface({ input: process.stdin, terminal: false });
    rl.on("line", (line) => {
        const words = line.trim().split(/\s+/);
        if (words[0] === "servicelevel" && words.length === 2) {
            const n = Number(words[1]);
            if (!Number.isInteger(n) || n < 0 || n > 255) {
                process.stderr.write(`nodeopcua: bad servicelevel ${words[1]}\n`);
                return;
            }
            setServiceLevel(n);
            process.stderr.write(`nodeopcua ack servicelevel ${n}\n`);
        } else if (words[0] === "retype" && words.length === 3) {
            try {
                retype(words[1], words[2]);
                process.stderr.write(`nodeopcua ack retype ${words[1]} ${words[2]}\n`);
            } catch (err) {
                process.stderr.write(`nodeopcua: ${err.message}\n`);
            }
        } else if (words[0] === "exit") {
            shutdown(0, "exit command");
        } else if (words[0] !== "") {
            process.stderr.write(`nodeopcua: unknown control line: ${line}\n`);
        }
    });
    rl.on("close", () => {
        if (!opts.ignoreStdinEOF) shutdown(0, "stdin closed");
    });

    process.stderr.write(
        `nodeopcua: node-opcua ${require("node-opcua/package.json").version}, ${opts.vars} vars` +
            `${opts.type ? ` of ${opts.type}` : ""}, rate ${opts.rate}/s, ns ${opts.ns}, security ${opts.security},` +
            ` pki ${pkiDir}; require ${requireMs} ms, initialize ${tInit - t0} ms, address space ${tStart - tInit} ms,` +
            ` start ${Date.now() - tStart} ms\n`
    );
    process.stdout.write(`nodeopcua ready endpoint=opc.tcp://127.0.0.1:${port}\n`);
}

main().catch((err) => {
    process.stderr.write(`nodeopcua: start failed: ${err && (err.stack || err)}\n`);
    finish(1);
});
