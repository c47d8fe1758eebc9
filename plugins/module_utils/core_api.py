"""A small client for the VPN core's gRPC API (HandlerService, StatsService), for Xray and V2Ray.

The handful of messages are encoded by hand, so the only dependency is grpcio (Debian's
python3-grpcio on nodes): no generated stubs, no protobuf runtime version to match. Both cores use
the same wire format; only the proto package prefix differs ("xray." vs "v2ray.core.").

The one client of the core's API: the users module imports it as
ansible_collections.rayfleet.fleet.plugins.module_utils.core_api, the node agent as
plugins.module_utils.core_api (the node_agent role installs it beside the agent package).
Standard library only at import time.
"""

NAMESPACES = {"xray": "xray", "v2ray": "v2ray.core"}

# vmess SecurityType.AUTO: the client picks the cipher.
VMESS_SECURITY_AUTO = 2


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number, value):
    return _varint(number << 3) + _varint(value) if value else b""


def _field_bytes(number, value):
    if isinstance(value, str):
        value = value.encode("utf-8")
    return _varint((number << 3) | 2) + _varint(len(value)) + value if value else b""


def _read_varint(data, pos):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def decode_fields(data):
    """Yield (field number, wire type, value) of a protobuf message (varint and length-delimited only)."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        yield number, wire_type, value


class CoreMessages:
    """Encoders for the messages of one namespace."""

    def __init__(self, core):
        if core not in NAMESPACES:
            raise ValueError(f"unknown core {core!r} (expected xray or v2ray)")
        self.prefix = NAMESPACES[core]

    def typed(self, type_name, value):
        return _field_bytes(1, self.prefix + "." + type_name) + _field_bytes(2, value)

    def account(self, protocol, uuid, flow=""):
        if protocol == "vless":
            return self.typed(
                "proxy.vless.Account", _field_bytes(1, uuid) + _field_bytes(2, flow) + _field_bytes(3, "none")
            )
        if protocol == "vmess":
            security = _field_varint(1, VMESS_SECURITY_AUTO)
            return self.typed("proxy.vmess.Account", _field_bytes(1, uuid) + _field_bytes(3, security))
        raise ValueError(f"unsupported protocol {protocol!r}")

    def add_user(self, tag, protocol, email, uuid, level=0, flow=""):
        user = _field_varint(1, level) + _field_bytes(2, email) + _field_bytes(3, self.account(protocol, uuid, flow))
        operation = self.typed("app.proxyman.command.AddUserOperation", _field_bytes(1, user))
        return _field_bytes(1, tag) + _field_bytes(2, operation)

    def remove_user(self, tag, email):
        operation = self.typed("app.proxyman.command.RemoveUserOperation", _field_bytes(1, email))
        return _field_bytes(1, tag) + _field_bytes(2, operation)

    def query_stats(self, pattern, reset):
        return _field_bytes(1, pattern) + _field_varint(2, 1 if reset else 0)

    def method(self, service, name):
        return f"/{self.prefix}.app.{service}/{name}"


def decode_stats(data):
    """QueryStatsResponse bytes -> {name: value}."""
    stats = {}
    for number, _wire, stat in decode_fields(data):
        if number != 1:
            continue
        name, value = "", 0
        for field, _wt, content in decode_fields(stat):
            if field == 1:
                name = content.decode("utf-8")
            elif field == 2:
                value = content
        stats[name] = value
    return stats


class CoreAPIError(Exception):
    """The core refused an operation; .details carries its message."""

    def __init__(self, details):
        super().__init__(details)
        self.details = details

    @property
    def already_exists(self):
        return "already exists" in self.details.lower()

    @property
    def not_found(self):
        """The *user* is unknown (removing it again is a no-op); an unknown inbound ("handler not found") is not."""
        details = self.details.lower()
        return "not found" in details and "handler not found" not in details


class CoreAPI:
    """Calls the core's API on a local address; one channel for the object's lifetime."""

    def __init__(self, address, core, timeout=10.0):
        import grpc  # imported here so the encoders above stay usable without grpcio

        self._grpc = grpc
        self.messages = CoreMessages(core)
        self.timeout = timeout
        self.channel = grpc.insecure_channel(address)
        # None serializers pass raw bytes through: we encode and decode ourselves.
        self._alter = self.channel.unary_unary(self.messages.method("proxyman.command.HandlerService", "AlterInbound"))
        self._query = self.channel.unary_unary(self.messages.method("stats.command.StatsService", "QueryStats"))

    def _call(self, stub, request):
        try:
            return stub(request, timeout=self.timeout)
        except self._grpc.RpcError as exc:
            code = exc.code() if hasattr(exc, "code") else None
            if code in (self._grpc.StatusCode.UNAVAILABLE, self._grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            raise CoreAPIError(exc.details() or str(code)) from exc

    def add_user(self, tag, protocol, email, uuid, level=0, flow=""):
        self._call(self._alter, self.messages.add_user(tag, protocol, email, uuid, level, flow))

    def alter_many(self, requests, window=256):
        """Send encoded AlterInbound REQUESTS with up to WINDOW in flight (one at a time costs a round
        trip each: ~7 s for 17k changes). Returns one CoreAPIError or None per request, in order."""
        outcomes = [None] * len(requests)
        for start in range(0, len(requests), window):
            batch = [
                (index, self._alter.future(requests[index], timeout=self.timeout))
                for index in range(start, min(start + window, len(requests)))
            ]
            for index, future in batch:
                try:
                    future.result()
                except self._grpc.RpcError as exc:
                    code = exc.code() if hasattr(exc, "code") else None
                    if code in (self._grpc.StatusCode.UNAVAILABLE, self._grpc.StatusCode.DEADLINE_EXCEEDED):
                        raise
                    outcomes[index] = CoreAPIError(exc.details() or str(code))
        return outcomes

    def remove_user(self, tag, email):
        self._call(self._alter, self.messages.remove_user(tag, email))

    def query_stats(self, pattern="", reset=False):
        return decode_stats(self._call(self._query, self.messages.query_stats(pattern, reset)))

    def close(self):
        self.channel.close()
