"""The users module's persisted config, changed as text: a small delta costs the change, not the node's size.

At 100,000 users the config is about 17 MB of JSON; parsing it, applying a +1 and writing it whole took the
users module about 0.4 s more than at 1,000. The module writes the config with dumps_with_spans, which also
gives where each user inbound's clients array lies in the text; it keeps those spans in its state with the
config's digest. A later small delta onto exactly that text (the digest proves it) is spliced in: the removed
clients' objects are cut out, the added ones appended before the array's end, and the spans moved by what
changed. The result is byte for byte what parsing, applying the delta (apply_delta) and writing it whole
would give; tests/unit/test_config_splice.py holds the two paths to that on random deltas.

A splice stays exact only on text it can read without parsing, so the spans are kept only when, in every user
inbound, each client is a flat object holding one '{' and one '}' (no string contains a brace) and its UUID
is in lower case, and a delta is spliced only when every email it names is plain (letters, digits and
@._+-) and its UUIDs are in lower case; anything else takes the parsing path. Standard library only: it
travels to the node inside the module.
"""

import json
import re

# Changes (users added plus emails removed) a splice takes: each one searches the arrays' text.
SPLICE_MAX = 32
PLAIN_EMAIL = re.compile(r"^[A-Za-z0-9@._+-]+$")
SEPARATOR = ", "  # json.dumps' item separator (dumps uses the defaults)


def dumps(value):
    return json.dumps(value, ensure_ascii=False)


def dumps_with_spans(config, tags):
    """(text, spans): CONFIG as the persisted config (one line, from the C encoder: indent= takes the pure-Python
    one, seconds at 100,000 users), and for each inbound of TAGS whose clients can be spliced
    (module doc) the [start, end) of its clients array in the text, '[' to ']' included. An inbound missing
    from the spans is never spliced."""
    skeleton = dict(config)
    skeleton["inbounds"] = []
    arrays = []  # (tag, clients, the marker's text in the skeleton)
    for inbound in config.get("inbounds", []):
        clients = inbound.get("settings", {}).get("clients") if isinstance(inbound, dict) else None
        if isinstance(clients, list) and inbound.get("tag") in tags:
            marker = f"\u0000rayfleet-clients-{len(arrays)}"
            arrays.append((inbound["tag"], clients, dumps(marker)))
            inbound = {**inbound, "settings": {**inbound["settings"], "clients": marker}}
        skeleton["inbounds"].append(inbound)
    text = dumps(skeleton)
    pieces, spans, position, length = [], {}, 0, 0
    for tag, clients, marker in arrays:
        at = text.index(marker, position)
        pieces.append(text[position:at])
        length += at - position
        array = dumps(clients)
        if _spliceable(array, clients):
            spans[tag] = [length, length + len(array)]
        pieces.append(array)
        length += len(array)
        position = at + len(marker)
    pieces.append(text[position:])
    return "".join(pieces) + "\n", spans


def _spliceable(array, clients):
    """Whether ARRAY, the text of CLIENTS, can be read without parsing: one brace at each object's edge and no
    other, and every UUID in lower case."""
    if array.count("{") != len(clients) or array.count("}") != len(clients):
        return False
    return all(isinstance(client, dict) and _lower_id(client) for client in clients)


def _flat(client_text):
    return client_text.count("{") == 1 and client_text.count("}") == 1


def _lower_id(client):
    uuid = client.get("id", "")
    return isinstance(uuid, str) and uuid == uuid.lower()


def splice_delta(text, spans, wanted_inbounds, removed_emails, uuid_re):
    """Apply a delta to TEXT (what dumps_with_spans wrote, with its SPANS) as apply_delta would to the parsed
    config. WANTED_INBOUNDS: desired_inbounds(meta, additions) (tag, protocol and the added clients of each user
    inbound); REMOVED_EMAILS: emails to drop. Returns (text, spans, removals, additions, problems) with
    apply_delta's removals, additions and problems, or None when the delta is not one a splice takes (module
    doc): then the caller parses the config."""
    added_emails = {client["email"] for item in wanted_inbounds for client in item["clients"]}
    gone = set(removed_emails) | added_emails
    if len(added_emails) + len(set(removed_emails)) > SPLICE_MAX:
        return None
    if not all(isinstance(email, str) and PLAIN_EMAIL.match(email) for email in gone):
        return None
    for item in wanted_inbounds:
        span = spans.get(item["tag"])
        if not (isinstance(span, list) and len(span) == 2 and all(isinstance(offset, int) for offset in span)):
            return None
        start, end = span
        if not (0 <= start < end <= len(text) and text[start] == "[" and text[end - 1] == "]"):
            return None
        # An added client must keep the array readable (module doc).
        if not all(_lower_id(client) and _flat(dumps(client)) for client in item["clients"]):
            return None
    edits, removals, additions, problems = [], [], [], []
    for item in wanted_inbounds:
        tag, protocol = item["tag"], item["protocol"]
        start, end = spans[tag]
        found_at = ((email, _find_client(text, start, end, email)) for email in gone)
        # email -> (object start, object end, client), in the array's order (as apply_delta lists removals)
        dropped = dict(sorted(((email, at) for email, at in found_at if at is not None), key=lambda pair: pair[1][0]))
        new_ids = set()
        new_by_email = {}
        for client in item["clients"]:
            email, uuid = client.get("email"), str(client.get("id", ""))
            if email in new_by_email:
                problems.append(f"email {email!r} appears twice in inbound {tag!r}")
            if not uuid_re.match(uuid):
                problems.append(f"client {email!r} of inbound {tag!r} has no valid UUID")
            elif uuid.lower() in new_ids or _id_kept(text, start, end, uuid, dropped):
                problems.append(f"client {email!r} of inbound {tag!r} shares its UUID with another client")
            new_ids.add(uuid.lower())
            new_by_email[email] = client
            old = dropped.get(email)
            if old is None or old[2] != client:  # the very same client again is no change
                additions.append((tag, protocol, client))
        removals.extend(
            (tag, protocol, found[2]) for email, found in dropped.items() if new_by_email.get(email) != found[2]
        )
        edits.extend(_array_edits(text, start, end, sorted(found[:2] for found in dropped.values()), item["clients"]))
    if problems:
        return text, spans, removals, additions, problems
    return (*_apply(text, spans, edits), removals, additions, problems)


def _find_client(text, start, end, email):
    """(start, end, client) of the object of EMAIL in the array TEXT[start:end], or None."""
    needle = '"email": ' + dumps(email)
    at = text.find(needle, start, end)
    while at != -1:
        after = at + len(needle)
        if text[after] in ",}" and text[at - 1] in "{ ":
            object_start = text.rfind("{", start, at)
            object_end = text.find("}", after, end) + 1
            return object_start, object_end, json.loads(text[object_start:object_end])
        at = text.find(needle, after, end)
    return None


def _id_kept(text, start, end, uuid, dropped):
    """Whether a client of the array TEXT[start:end] that is not DROPPED has UUID (lower case, as is the text)."""
    needle = '"id": ' + dumps(uuid.lower())
    at = text.find(needle, start, end)
    while at != -1:
        if not any(object_start <= at < object_end for object_start, object_end, _c in dropped.values()):
            return True
        at = text.find(needle, at + len(needle), end)
    return False


def _array_edits(text, start, end, dropped, added):
    """Edits (start, end, replacement) that turn the array TEXT[start:end] into its kept elements followed by
    ADDED: DROPPED are the sorted (start, end) of the objects that go. An element's separator is the ", "
    before it; when the first elements go, everything up to the first kept one goes with them."""
    edits = []
    close = end - 1
    empty_after = close == start + 1  # "[]"
    index = 0
    if dropped and dropped[0][0] == start + 1:  # the first element goes, and so do those right behind it
        cut_end = dropped[0][1]
        index = 1
        while index < len(dropped) and dropped[index][0] == cut_end + len(SEPARATOR):
            cut_end = dropped[index][1]
            index += 1
        if text.startswith(SEPARATOR, cut_end):
            cut_end += len(SEPARATOR)  # the first kept element's separator: it is the first now
        else:
            empty_after = True  # every element went
        edits.append((start + 1, cut_end, ""))
    for object_start, object_end in dropped[index:]:
        edits.append((object_start - len(SEPARATOR), object_end, ""))
    if added:
        joined = SEPARATOR.join(dumps(client) for client in added)
        edits.append((close, close, joined if empty_after else SEPARATOR + joined))
    return edits


def _apply(text, spans, edits):
    """(TEXT with EDITS applied, SPANS moved by them)."""
    edits.sort(key=lambda edit: (edit[0], edit[1]))
    pieces, position = [], 0
    for edit_start, edit_end, replacement in edits:
        pieces.append(text[position:edit_start])
        pieces.append(replacement)
        position = edit_end
    pieces.append(text[position:])

    def moved(offset):
        shift = 0
        for edit_start, edit_end, replacement in edits:
            if edit_start < offset:
                shift += len(replacement) - (min(edit_end, offset) - edit_start)
        return offset + shift

    return "".join(pieces), {tag: [moved(start), moved(end)] for tag, (start, end) in spans.items()}
