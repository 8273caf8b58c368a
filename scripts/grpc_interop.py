#!/usr/bin/env python3
"""gRPC interop with Pactum's generated Rust code, using only Python's standard gRPC tooling.

Stubs are generated at run time by grpcio-tools from the .proto files Pactum emitted.

  grpc_interop.py client PROTO_DIR PRICING_URL ORDERS_URL [INVENTORY_URL] [--extra-field]
      Calls the Rust servers; prints one JSON object with what came back. With
      INVENTORY_URL, also reserves stock twice under one idempotency-key (as a client
      retrying would), once without a key and once with the key but another message.
  grpc_interop.py server PROTO_DIR [--extra-field]
      Serves PricingService.GetPrice; prints "listening PORT", serves until stdin closes.
  grpc_interop.py descriptors PROTO_DIR SET_FILE...
      Compares every file of each encoded FileDescriptorSet (a generated FILE_DESCRIPTOR_SET)
      with protoc's descriptor of the same .proto; prints one JSON object.
  grpc_interop.py services URL
      Prints the services the server lists by reflection, as one JSON array.
  grpc_interop.py reflect PROTO_DIR URL
      Reads the server's descriptors by gRPC server reflection only (as grpcurl does), compares
      each with protoc's descriptor of the emitted .proto, then calls GetPrice through a
      message class built from the reflected descriptors; prints one JSON object.

--extra-field compiles a newer contract: Money gains an optional field, as a compatible
minor change would add it.
"""
import importlib
import json
import os
import re
import sys
import tempfile
import threading
from concurrent import futures

import grpc
from grpc_tools import protoc
from google.protobuf import any_pb2
from google.rpc import status_pb2


def stubs(proto_dir, extra_field):
    work = tempfile.mkdtemp()
    src = os.path.join(work, "proto")
    os.makedirs(src)
    for name in os.listdir(proto_dir):
        text = open(os.path.join(proto_dir, name)).read()
        if extra_field and name == "pricing.v1.proto":
            # A compatible change: a new optional field in Money.
            text = re.sub(r"(message Money \{\n)", r"\1  optional string rounding = 2000;\n", text)
        open(os.path.join(src, name), "w").write(text)
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    files = [os.path.join(src, n) for n in os.listdir(src)]
    code = protoc.main(["protoc", f"-I{src}", f"-I{include}", f"--python_out={work}", f"--grpc_python_out={work}", *files])
    if code != 0:
        raise SystemExit(f"protoc failed: {code}")
    sys.path.insert(0, work)
    return importlib.import_module("pricing.v1_pb2"), importlib.import_module("pricing.v1_pb2_grpc"), \
        importlib.import_module("orders.v1_pb2"), importlib.import_module("orders.v1_pb2_grpc"), \
        importlib.import_module("inventory.v1_pb2"), importlib.import_module("inventory.v1_pb2_grpc")


def keyed(inventory_url, pricing, inventory, inventory_grpc):
    """ReserveStock as an outside client retries it: same key, same message, twice."""
    out = {}
    with grpc.insecure_channel(inventory_url.removeprefix("http://")) as ch:
        stub = inventory_grpc.InventoryServiceStub(ch)
        request = inventory.ReserveStockRequest(
            order_id="00000000-0000-0000-0000-0000000000aa",
            lines=[pricing.QuoteLine(sku="BOOK-42", quantity=1)])
        key = [("idempotency-key", "python-retry-1")]
        first, call = stub.ReserveStock.with_call(request, timeout=5, metadata=key)
        second, again = stub.ReserveStock.with_call(request, timeout=5, metadata=key)
        out["same_reply"] = first.SerializeToString() == second.SerializeToString()
        out["replayed"] = dict(again.initial_metadata()).get("idempotent-replayed")
        other = inventory.ReserveStockRequest(
            order_id=request.order_id, lines=[pricing.QuoteLine(sku="BOOK-42", quantity=2)])
        for name, metadata, message in [("no_key", [], request), ("other_message", key, other)]:
            try:
                stub.ReserveStock(message, timeout=5, metadata=metadata)
                out[name] = "OK"
            except grpc.RpcError as e:
                out[name] = e.code().name
        # A declared error is a final outcome: replayed with the same code and the same
        # status details, byte for byte.
        too_many = inventory.ReserveStockRequest(
            order_id="00000000-0000-0000-0000-0000000000bb",
            lines=[pricing.QuoteLine(sku="BOOK-42", quantity=1000)])
        seen = []
        for _ in range(2):
            try:
                stub.ReserveStock(too_many, timeout=5, metadata=[("idempotency-key", "python-retry-2")])
                seen.append(("OK", b"", None))
            except grpc.RpcError as e:
                trailers = dict(e.trailing_metadata())
                seen.append((e.code().name, trailers.get("grpc-status-details-bin"), trailers.get("idempotent-replayed")))
        out["declared"] = seen[0][0]
        out["declared_same"] = seen[0][:2] == seen[1][:2] and seen[0][1] is not None
        out["declared_replayed"] = seen[1][2]
        level = stub.CheckStock(inventory.CheckStockRequest(sku="BOOK-42"), timeout=5)
        out["available"] = level.available
        out["reserved"] = level.reserved
    return out


def client(proto_dir, pricing_url, orders_url, inventory_url, extra_field):
    pricing, pricing_grpc, orders, orders_grpc, inventory, inventory_grpc = stubs(proto_dir, extra_field)
    out = {}
    with grpc.insecure_channel(pricing_url.removeprefix("http://")) as ch:
        stub = pricing_grpc.PricingServiceStub(ch)
        money = stub.GetPrice(pricing.GetPriceRequest(sku="BOOK-42"), timeout=5, metadata=[
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])
        out["price"] = {"amount": money.amount, "currency": money.currency}
        try:
            stub.GetPrice(pricing.GetPriceRequest(sku="NOPE-1"), timeout=5)
            out["unknown"] = "no error"
        except grpc.RpcError as e:
            out["unknown"] = {"code": e.code().name}
            details = dict(e.trailing_metadata()).get("grpc-status-details-bin")
            if details:
                st = status_pb2.Status.FromString(details)
                err = pricing.UnknownSku()
                st.details[0].Unpack(err)
                out["unknown"]["detail"] = st.details[0].type_url
                out["unknown"]["sku"] = err.sku
    with grpc.insecure_channel(orders_url.removeprefix("http://")) as ch:
        stub = orders_grpc.OrdersServiceStub(ch)
        try:
            stub.GetOrder(orders.GetOrderRequest(id="00000000-0000-0000-0000-000000000404"), timeout=5)
        except grpc.RpcError as e:
            out["order"] = {"code": e.code().name}
    if inventory_url:
        out["keyed"] = keyed(inventory_url, pricing, inventory, inventory_grpc)
    print(json.dumps(out), flush=True)


def server(proto_dir, extra_field):
    pricing, pricing_grpc, _, _, _, _ = stubs(proto_dir, extra_field)

    class Pricing(pricing_grpc.PricingServiceServicer):
        def GetPrice(self, request, context):
            if request.sku != "BOOK-42":
                detail = any_pb2.Any()
                detail.Pack(pricing.UnknownSku(sku=request.sku), type_url_prefix="type.googleapis.com/")
                st = status_pb2.Status(code=grpc.StatusCode.NOT_FOUND.value[0], message="No price is known for this SKU.", details=[detail])
                context.abort_with_status(_RichStatus(st))
            money = pricing.Money(amount="9.99", currency="EUR")
            if extra_field:
                money.rounding = "half-even"
            return money

    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pricing_grpc.add_PricingServiceServicer_to_server(Pricing(), srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    print(f"listening {port}", flush=True)
    # Serve until the test closes our stdin.
    threading.Thread(target=lambda: (sys.stdin.read(), srv.stop(0)), daemon=True).start()
    srv.wait_for_termination()


class _RichStatus(grpc.Status):
    def __init__(self, st):
        self.code = grpc.StatusCode.NOT_FOUND
        self.details = st.message
        self.trailing_metadata = (("grpc-status-details-bin", st.SerializeToString()),)


def protoc_descriptors(proto_dir):
    """protoc's descriptors of every .proto in proto_dir and of what they import."""
    from google.protobuf import descriptor_pb2
    work = tempfile.mkdtemp()
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    out_set = os.path.join(work, "protoc.pb")
    files = [os.path.join(proto_dir, n) for n in sorted(os.listdir(proto_dir))]
    if protoc.main(["protoc", f"-I{proto_dir}", f"-I{include}", "--include_imports",
                    f"--descriptor_set_out={out_set}", *files]) != 0:
        raise SystemExit("protoc failed")
    return descriptor_pb2.FileDescriptorSet.FromString(open(out_set, "rb").read())


def differs(got, want):
    """None when a served descriptor says what protoc's says, else both, printed."""
    if want.name.startswith("google/"):
        # Pactum carries the well-known messages, not protoc's per-language file options.
        want.ClearField("options")
    if got == want:
        return None
    import difflib
    diff = difflib.unified_diff(str(want).splitlines(), str(got).splitlines(),
                                "protoc", "pactum", lineterm="", n=4)
    return f"{want.name}:\n" + "\n".join(diff)


def descriptors(proto_dir, set_files):
    from google.protobuf import descriptor_pb2
    expected = {f.name: f for f in protoc_descriptors(proto_dir).file}
    out = {"mismatches": [], "files": []}
    for path in set_files:
        for got in descriptor_pb2.FileDescriptorSet.FromString(open(path, "rb").read()).file:
            want = expected.get(got.name)
            if want is None:
                out["mismatches"].append(f"{got.name}: protoc has no such file")
                continue
            out["files"].append(got.name)
            problem = differs(got, want)
            if problem:
                out["mismatches"].append(problem)
    out["files"] = sorted(set(out["files"]))
    print(json.dumps(out))


def services(url):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import \
        ProtoReflectionDescriptorDatabase
    with grpc.insecure_channel(url.removeprefix("http://")) as ch:
        print(json.dumps(sorted(ProtoReflectionDescriptorDatabase(ch).get_services())))


def reflect(proto_dir, url):
    """A client with no .proto: everything it knows comes from the server's reflection."""
    from google.protobuf import descriptor_pool, json_format, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import \
        ProtoReflectionDescriptorDatabase

    expected = protoc_descriptors(proto_dir)
    out = {"mismatches": [], "files": [], "not_served": []}
    with grpc.insecure_channel(url.removeprefix("http://")) as ch:
        db = ProtoReflectionDescriptorDatabase(ch)
        out["services"] = sorted(db.get_services())
        for want in expected.file:
            try:
                got = db.FindFileByName(want.name)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                out["not_served"].append(want.name)
                continue
            out["files"].append(want.name)
            problem = differs(got, want)
            if problem:
                out["mismatches"].append(problem)
        # A call built from reflected descriptors alone: the pool asks the server for each
        # symbol and every file it depends on.
        pool = descriptor_pool.DescriptorPool(db)
        method = pool.FindMethodByName("shop.pricing.v1.PricingService.GetPrice")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        call = ch.unary_unary(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString)
        reply = call(json_format.ParseDict({"sku": "BOOK-42"}, request_class()), timeout=10)
        out["price"] = json_format.MessageToDict(reply)
        try:
            db.FindFileContainingSymbol("shop.nowhere.v1.Nothing")
            out["unknown_symbol"] = "found"
        except (KeyError, grpc.RpcError) as e:
            out["unknown_symbol"] = e.code().name if isinstance(e, grpc.RpcError) else "KeyError"
    print(json.dumps(out))


if __name__ == "__main__":
    extra = "--extra-field" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--extra-field"]
    if args[0] == "client":
        client(args[1], args[2], args[3], args[4] if len(args) > 4 else None, extra)
    elif args[0] == "descriptors":
        descriptors(args[1], args[2:])
    elif args[0] == "services":
        services(args[1])
    elif args[0] == "reflect":
        reflect(args[1], args[2])
    else:
        server(args[1], extra)
