// Validates the mesh manifests `pactum manifests` writes against the published schemas of
// Gateway API and Istio (@kubernetes-models/*, JSON Schema from the projects' CRDs).
// Core objects (Service, ConfigMap) are validated by `kubernetes-validate` (PyPI) instead.
//
//   node scripts/manifests/validate.mjs generated-example/deploy/*/*.linkerd.yaml ...
//
// Where the package's newest schema has an older apiVersion than the one written, the object
// is checked against that schema: GRPCRoute was promoted from v1alpha2 to v1, and Istio's
// networking and security APIs from v1beta1 to v1, without changes to their fields.
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";
import { GRPCRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1alpha2/GRPCRoute";
import { VirtualService } from "@kubernetes-models/istio/networking.istio.io/v1beta1/VirtualService";
import { DestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1beta1/DestinationRule";
import { PeerAuthentication } from "@kubernetes-models/istio/security.istio.io/v1beta1/PeerAuthentication";

const models = {
  "gateway.networking.k8s.io/v1 HTTPRoute": HTTPRoute,
  "gateway.networking.k8s.io/v1 GRPCRoute": GRPCRoute,
  "networking.istio.io/v1 VirtualService": VirtualService,
  "networking.istio.io/v1 DestinationRule": DestinationRule,
  "security.istio.io/v1 PeerAuthentication": PeerAuthentication,
};

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: validate.mjs <manifest.yaml>...");
  process.exit(2);
}
let failed = 0;
let checked = 0;
for (const file of files) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    if (doc === null) continue;
    const key = `${doc.apiVersion} ${doc.kind}`;
    const Model = models[key];
    if (!Model) {
      console.error(`${file}: ${key}: no schema known for it`);
      failed++;
      continue;
    }
    try {
      new Model({ metadata: doc.metadata, spec: doc.spec }).validate();
      checked++;
    } catch (e) {
      console.error(`${file}: ${key} ${doc.metadata?.name}: ${e.message}`);
      failed++;
    }
  }
}
console.log(`mesh manifests: ${checked} object(s) valid, ${failed} problem(s)`);
process.exit(failed === 0 ? 0 : 1);
