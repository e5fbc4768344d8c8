// A node-opcua client of the pair's OPC UA endpoint, for
// TestUAServerWithNodeOPCUAClient. Run with NODE_PATH pointing at
// test/nodeopcua/node_modules. argv[2] is a JSON object:
//   {endpoint, ns, pki, user, password, maxRefs}
// It prints one JSON line with what it found and exits 0, or prints the
// error on stderr and exits 1. node-opcua's own logging goes to stderr.
"use strict";
const realLog = console.log;
console.log = (...a) => console.error(...a);
const opcua = require("node-opcua");

async function main() {
  const cfg = JSON.parse(process.argv[2]);
  const certificateManager = new opcua.OPCUACertificateManager({
    rootFolder: cfg.pki,
    automaticallyAcceptUnknownCertificate: true,
  });
  await certificateManager.initialize();
  const client = opcua.OPCUAClient.create({
    applicationName: "uamirror-test-nodeopcua-client",
    applicationUri: "urn:uamirror:test:nodeopcua-client",
    securityMode: opcua.MessageSecurityMode.SignAndEncrypt,
    securityPolicy: opcua.SecurityPolicy.Basic256Sha256,
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
    clientCertificateManager: certificateManager,
  });
  await client.connect(cfg.endpoint);
  const out = {};
  try {
    const anon = await client.createSession();
    const ns = (await anon.readNamespaceArray()).indexOf(cfg.ns);
    out.ns = ns;

    // Browse the per-mapping tree in pages.
    anon.requestedMaxReferencesPerNode = cfg.maxRefs;
    let r = await anon.browse({
      nodeId: `ns=${ns};s=Mappings/Items`,
      browseDirection: opcua.BrowseDirection.Forward,
      referenceTypeId: "HierarchicalReferences",
      includeSubtypes: true,
      resultMask: 63,
    });
    out.firstPage = r.references.length;
    let items = r.references.length;
    let pages = 1;
    while (r.continuationPoint && r.continuationPoint.length > 0) {
      r = await anon.browseNext(r.continuationPoint, false);
      if (r.statusCode.value !== 0) throw new Error("BrowseNext: " + r.statusCode.toString());
      items += r.references.length;
      pages++;
    }
    out.items = items;
    out.pages = pages;

    // TranslateBrowsePathsToNodeIds.
    const paths = [
      opcua.makeBrowsePath("RootFolder", "/Objects/Server.ServerStatus.BuildInfo"),
      opcua.makeBrowsePath("RootFolder", `/Objects/${ns}:Pair.${ns}:Failover`),
      opcua.makeBrowsePath("RootFolder", "/Objects/Server.ServerRedundancy.ServerUriArray"),
    ];
    out.translate = [];
    for (const p of paths) {
      const t = await anon.translateBrowsePath(p);
      out.translate.push({
        status: t.statusCode.name,
        target: t.targets && t.targets.length ? t.targets[0].targetId.toString() : "",
      });
    }

    // BuildInfo, ServerStatus, ServerArray, limits, redundancy.
    const rd = await anon.read([
      { nodeId: "i=2260", attributeId: opcua.AttributeIds.Value },
      { nodeId: "i=2254", attributeId: opcua.AttributeIds.Value },
      { nodeId: "i=11710", attributeId: opcua.AttributeIds.Value },
      { nodeId: "i=3709", attributeId: opcua.AttributeIds.Value },
      { nodeId: "i=2256", attributeId: opcua.AttributeIds.Value },
    ]);
    const bi = rd[0].value.value;
    out.buildInfo = bi ? { productName: bi.productName, softwareVersion: bi.softwareVersion,
      manufacturerName: bi.manufacturerName } : null;
    out.serverArray = rd[1].value.value;
    out.maxNodesPerBrowse = rd[2].value.value;
    out.redundancySupport = rd[3].value.value;
    out.serverState = rd[4].value.value ? rd[4].value.value.state : null;

    // The Failover method's declared arguments.
    const args = await anon.getArgumentDefinition(opcua.coerceNodeId(`ns=${ns};s=Pair/Failover`));
    out.inputArguments = args.inputArguments.map((a) => a.name);
    out.outputArguments = args.outputArguments.map((a) => a.name);

    const call = async (session) => {
      const res = await session.call({
        objectId: `ns=${ns};s=Pair`,
        methodId: `ns=${ns};s=Pair/Failover`,
        inputArguments: [],
      });
      return res.statusCode.name;
    };
    out.anonymousCall = await call(anon);
    await anon.close();

    const op = await client.createSession({
      type: opcua.UserTokenType.UserName,
      userName: cfg.user,
      password: cfg.password,
    });
    out.operatorCall = await call(op);
    await op.close();
  } finally {
    await client.disconnect();
  }
  realLog(JSON.stringify(out));
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error("nodeopcua_client:", err && err.stack ? err.stack : err);
    process.exit(1);
  },
);
