#!/usr/bin/python3
"""A Python client for MCKO's gRPC API (mcko.v1) over mutual TLS, with Debian's python3-grpcio.

It needs no generated Python code: the message classes are built at run time from the descriptor set that
`npm run gen` commits (protos/gen/mcko.binpb), and calls go through grpcio's generic unary API.

    /usr/bin/python3 mcko_client.py --addr localhost:7443 --ca ca.pem --cert admin.pem --key admin.key \
        create-key payments card-dek AES_256
    ... get-key vaults/payments/keys/card-dek
    ... list-keys payments
    ... set-state vaults/payments/keys/card-dek SUSPENDED

Errors print the gRPC status code, the ErrorInfo reason and the field violations, and exit 1.
"""
import argparse
import json
import os
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

HERE = os.path.dirname(os.path.abspath(__file__))
DESCRIPTORS = os.path.join(HERE, "..", "..", "protos", "gen", "mcko.binpb")


class Mcko:
    """Typed-enough access to the mcko.v1 services."""

    def __init__(self, addr, ca, cert, key, descriptors=DESCRIPTORS):
        fds = descriptor_pb2.FileDescriptorSet()
        with open(descriptors, "rb") as f:
            fds.ParseFromString(f.read())
        self.pool = descriptor_pool.DescriptorPool()
        for fd in fds.file:
            self.pool.Add(fd)
        self.messages = _Classes(self.pool)
        creds = grpc.ssl_channel_credentials(root_certificates=_read(ca), private_key=_read(key), certificate_chain=_read(cert))
        self.channel = grpc.secure_channel(addr, creds)

    def msg(self, type_name, **fields):
        return self.messages[type_name](**fields)

    def call(self, service, method, request, timeout=30):
        svc = self.pool.FindServiceByName("mcko.v1." + service)
        m = svc.methods_by_name[method]
        out = self.messages[m.output_type.full_name]
        stub = self.channel.unary_unary(
            "/%s/%s" % (svc.full_name, method),
            request_serializer=lambda r: r.SerializeToString(),
            response_deserializer=out.FromString,
        )
        return stub(request, timeout=timeout)

    def error_details(self, err):
        """(reason, [field violations]) from the google.rpc.Status in the trailers."""
        reason, fields = "", []
        for k, v in (err.trailing_metadata() or ()):
            if k != "grpc-status-details-bin":
                continue
            status = self.messages["google.rpc.Status"].FromString(v)
            for d in status.details:
                name = d.type_url.split("/")[-1]
                if name == "google.rpc.ErrorInfo":
                    reason = self.messages[name].FromString(d.value).reason
                elif name == "google.rpc.BadRequest":
                    fields = [f.field for f in self.messages[name].FromString(d.value).field_violations]
        return reason, fields

    def close(self):
        self.channel.close()


class _Classes:
    """Message classes by full name, built on first use from the pool (works with protobuf 3.20+ and 4.x)."""

    def __init__(self, pool):
        self._pool = pool
        self._cache = {}
        self._factory = None if hasattr(message_factory, "GetMessageClass") else message_factory.MessageFactory(pool)

    def __getitem__(self, name):
        if name not in self._cache:
            desc = self._pool.FindMessageTypeByName(name)
            self._cache[name] = message_factory.GetMessageClass(desc) if self._factory is None else self._factory.GetPrototype(desc)
        return self._cache[name]


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _show(message):
    print(json.dumps(json_format.MessageToDict(message), indent=2, sort_keys=True))


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--addr", default=os.environ.get("MCKO_ADDR", "localhost:7443"))
    p.add_argument("--ca", default=os.environ.get("MCKO_CA_CERT"))
    p.add_argument("--cert", default=os.environ.get("MCKO_CLIENT_CERT"))
    p.add_argument("--key", default=os.environ.get("MCKO_CLIENT_KEY"))
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create-key")
    c.add_argument("vault")
    c.add_argument("key_id")
    c.add_argument("algorithm")
    g = sub.add_parser("get-key")
    g.add_argument("name")
    l = sub.add_parser("list-keys")
    l.add_argument("vault")
    s = sub.add_parser("set-state")
    s.add_argument("name")
    s.add_argument("state")
    s.add_argument("--reason", default="")
    a = p.parse_args(argv)
    if not (a.ca and a.cert and a.key):
        p.error("--ca, --cert and --key (or MCKO_CA_CERT, MCKO_CLIENT_CERT, MCKO_CLIENT_KEY) are required")
    m = Mcko(a.addr, a.ca, a.cert, a.key)
    try:
        if a.cmd == "create-key":
            alg = m.pool.FindEnumTypeByName("mcko.v1.KeyAlgorithm").values_by_name["KEY_ALGORITHM_" + a.algorithm].number
            req = m.msg("mcko.v1.CreateKeyRequest", parent="vaults/" + a.vault, key_id=a.key_id, key=m.msg("mcko.v1.Key", algorithm=alg))
            _show(m.call("KeyService", "CreateKey", req).key)
        elif a.cmd == "get-key":
            _show(m.call("KeyService", "GetKey", m.msg("mcko.v1.GetKeyRequest", name=a.name)).key)
        elif a.cmd == "list-keys":
            r = m.call("KeyService", "ListKeys", m.msg("mcko.v1.ListKeysRequest", parent="vaults/" + a.vault, page_size=1000))
            for k in r.keys:
                print(k.name)
        elif a.cmd == "set-state":
            state = m.pool.FindEnumTypeByName("mcko.v1.KeyState").values_by_name["KEY_STATE_" + a.state].number
            _show(m.call("KeyService", "SetKeyState", m.msg("mcko.v1.SetKeyStateRequest", name=a.name, state=state, reason=a.reason)).key)
    except grpc.RpcError as e:
        reason, fields = m.error_details(e)
        print("error: %s %s: %s %s" % (e.code().name, reason, e.details(), ("fields: " + ", ".join(fields)) if fields else ""), file=sys.stderr)
        return 1
    finally:
        m.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
