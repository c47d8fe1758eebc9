"""The users module's spliced config (plugins/module_utils/config_splice.py): a small delta spliced into the text
is byte for byte what parsing the config, applying the delta (apply_delta) and writing it whole gives."""

from __future__ import annotations

import copy
import json
import random
import uuid

import pytest

from tests.fixtures.xray_role import collection_module

META = [
    {"tag": "vless-tcp-8443", "protocol": "vless", "flow": "xtls-rprx-vision"},
    {"tag": "vless-ws-8444", "protocol": "vless", "flow": ""},
    {"tag": "vmess-ws-8445", "protocol": "vmess"},
]
TAGS = [meta["tag"] for meta in META]


def core():
    return collection_module("plugins.modules.core_users")


def splice():
    return collection_module("plugins.module_utils.config_splice")


def user(email: str, protocol: str, rng: random.Random) -> dict:
    return {"email": email, "id": str(uuid.UUID(int=rng.getrandbits(128))), "protocol": protocol, "level": 0}


def written(users: list[dict]) -> tuple[str, dict]:
    """The config a full sync of USERS writes (with an API inbound and outbounds around the user inbounds)."""
    shape = {
        "log": {"loglevel": "warning"},
        "inbounds": [{"tag": "api", "port": 10085, "protocol": "dokodemo-door", "settings": {"address": "127.0.0.1"}}]
        + [{"tag": m["tag"], "protocol": m["protocol"], "settings": {"decryption": "none"}} for m in META],
        "outbounds": [{"protocol": "freedom"}],
    }
    config = core().merged_config(shape, core().desired_inbounds(META, users))
    return splice().dumps_with_spans(config, TAGS)


def both_ways(text: str, spans: dict, additions: list[dict], removed: list[str]):
    """(spliced, parsed): the splice's (text, spans, removals, additions, problems) and the same from apply_delta
    on the parsed config, written whole."""
    wanted = core().desired_inbounds(META, additions)
    spliced = splice().splice_delta(text, spans, wanted, removed, core().UUID_RE)
    current = json.loads(text)
    removals, added, problems = core().apply_delta(current, META, additions, removed)
    whole_text, whole_spans = splice().dumps_with_spans(current, TAGS)
    return spliced, (whole_text, whole_spans, removals, added, problems)


def test_the_spans_frame_each_clients_array_and_the_text_is_the_plain_dump():
    rng = random.Random(1)
    users = [user(f"cfg-{n}", "vmess" if n % 4 == 0 else "vless", rng) for n in range(50)]
    text, spans = written(users)
    config = json.loads(text)
    assert text == json.dumps(config, ensure_ascii=False) + "\n"
    for inbound in config["inbounds"][1:]:
        start, end = spans[inbound["tag"]]
        assert json.loads(text[start:end]) == inbound["settings"]["clients"]
    assert "api" not in spans


@pytest.mark.parametrize("seed", range(60))
def test_a_random_small_delta_spliced_is_byte_for_byte_the_delta_applied_and_written_whole(seed):
    rng = random.Random(seed)
    size = rng.choice([0, 1, 2, 3, 8, 40])
    users = [user(f"cfg-{n}", rng.choice(["vless", "vmess"]), rng) for n in range(size)]
    text, spans = written(users)
    for _step in range(4):  # several deltas in a row, each onto the previous one's text and spans
        served = [json.loads(text[s:e]) for s, e in spans.values()]
        emails = sorted({client["email"] for clients in served for client in clients})
        removed = rng.sample(emails, rng.randint(0, min(len(emails), 5)))
        additions = [
            user(f"cfg-{1000 + rng.randrange(10**6)}", rng.choice(["vless", "vmess"]), rng)
            for _ in range(rng.randint(0, 4))
        ]
        for email in rng.sample(emails, min(len(emails), rng.randint(0, 2))):  # re-added: same or a new identity
            again = user(email, rng.choice(["vless", "vmess"]), rng)
            additions.append(again)
        spliced, whole = both_ways(text, spans, additions, removed)
        assert spliced is not None
        assert spliced[4] == whole[4] == []
        assert spliced[0] == whole[0], "the spliced text differs from the config written whole"
        assert spliced[1] == whole[1]
        assert spliced[2] == whole[2] and spliced[3] == whole[3]
        text, spans = spliced[0], spliced[1]


def test_the_problems_a_splice_finds_are_apply_deltas():
    rng = random.Random(7)
    users = [user(f"cfg-{n}", "vless", rng) for n in range(5)]
    text, spans = written(users)
    taken = dict(users[1], email="cfg-90")  # another email with cfg-1's UUID
    twice = [user("cfg-91", "vless", rng), user("cfg-91", "vless", rng)]
    bad = dict(user("cfg-92", "vless", rng), id="not-a-uuid")
    for additions in ([taken], twice, [bad]):
        spliced, whole = both_ways(text, spans, additions, [])
        assert spliced is not None and spliced[4] and spliced[4] == whole[4]
    # A UUID freed by a removal in the same delta may be taken at once, as apply_delta allows.
    spliced, whole = both_ways(text, spans, [taken], ["cfg-1"])
    assert spliced[4] == whole[4] == [] and spliced[0] == whole[0]


def test_what_a_splice_cannot_read_safely_is_left_to_the_parsing_path():
    rng = random.Random(3)
    users = [user(f"cfg-{n}", "vless", rng) for n in range(5)]
    text, spans = written(users)

    def take(added, removed=(), on=spans):
        wanted = core().desired_inbounds(META, list(added))
        return splice().splice_delta(text, on, wanted, list(removed), core().UUID_RE)

    upper = dict(user("cfg-50", "vless", rng))
    upper["id"] = upper["id"].upper()
    assert take([upper]) is None, "an upper-case UUID"
    assert take([user("we{ird}", "vless", rng)]) is None, "an email that is not plain"
    assert take([], ["a b"]) is None, "a removed email that is not plain"
    many = [user(f"cfg-{100 + n}", "vless", rng) for n in range(splice().SPLICE_MAX + 1)]
    assert take(many) is None, "more changes than a splice takes"
    assert take([user("cfg-60", "vless", rng)], on={}) is None, "no spans recorded"
    shifted = {tag: [start + 1, end] for tag, (start, end) in spans.items()}
    assert take([user("cfg-61", "vless", rng)], on=shifted) is None, "spans that do not frame an array"
    # A client whose text holds a brace (written by a full sync) leaves that inbound without spans.
    odd = [*users, dict(user("cfg-70", "vless", rng), email="odd}name")]
    _text, odd_spans = written(odd)
    assert set(odd_spans) == {"vmess-ws-8445"}


def test_a_splice_leaves_the_spans_it_was_given_untouched():
    rng = random.Random(5)
    users = [user(f"cfg-{n}", "vless", rng) for n in range(3)]
    text, spans = written(users)
    before = copy.deepcopy(spans)
    both_ways(text, spans, [user("cfg-9", "vless", rng)], ["cfg-0"])
    assert spans == before
