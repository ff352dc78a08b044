"""A batch of writes as one Lua script call: one command, one reply, applied atomically.

Sending thousands of commands through redis-py's asyncio pipeline costs ~30 µs each in
client-side packing and reply handling; a script call carries the same writes as
arguments and Redis applies them in one go. Keys travel in KEYS so the call is valid on a
Redis Cluster when every key shares a slot (the sink groups writes by slot there).

The reply is ``{writes applied, microseconds the script ran}``: Redis serves nobody else
meanwhile, so the worker sizes its parts to keep that short (streams/budget.py).

>>> keys_, args = encode([ZIncr("k", "m", 1.5), ZKeepTop("k", 10), Put("p", b"x", 60)])
>>> keys_, args
(['k', 'p'], ['Z', 1, '1.5', 'm', 'T', 1, -11, 'S', 2, b'x', 60])
"""

from __future__ import annotations

from collections.abc import Sequence

from currents.writes import (
    Delete,
    GuardedPut,
    HashIncr,
    HashSet,
    Put,
    SetAdd,
    SetRemove,
    Write,
    ZAdd,
    ZIncr,
    ZKeepTop,
    ZRemove,
)

APPLY_WRITES_LUA = """
local started = redis.call('TIME')
local i = 1
local n = #ARGV
local applied = 0
local journal, entry
if ARGV[1] == 'J' then
  journal, entry = KEYS[tonumber(ARGV[2])], ARGV[3]
  if redis.call('HEXISTS', journal, entry) == 0 then return {0, 0} end
  i = 4
end
while i <= n do
  local op = ARGV[i]
  local key = KEYS[tonumber(ARGV[i + 1])]
  if op == 'Z' then
    redis.call('ZINCRBY', key, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'T' then
    redis.call('ZREMRANGEBYRANK', key, 0, tonumber(ARGV[i + 2])); i = i + 3
  elseif op == 'S' then
    local ttl = tonumber(ARGV[i + 3])
    if ttl > 0 then redis.call('SET', key, ARGV[i + 2], 'EX', ttl)
    else redis.call('SET', key, ARGV[i + 2]) end
    i = i + 4
  elseif op == 'G' then
    if redis.call('EXISTS', KEYS[tonumber(ARGV[i + 4])]) == 1 then
      redis.call('SET', key, ARGV[i + 2], 'EX', tonumber(ARGV[i + 3]))
    end
    i = i + 5
  elseif op == 'I' then
    redis.call('HINCRBY', key, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'H' or op == 'A' or op == 'R' or op == 'SA' or op == 'SR' then
    local count = tonumber(ARGV[i + 2])
    local command = ({H = 'HSET', A = 'ZADD', R = 'ZREM', SA = 'SADD', SR = 'SREM'})[op]
    redis.call(command, key, unpack(ARGV, i + 3, i + 2 + count))
    i = i + 3 + count
  elseif op == 'D' then
    redis.call('DEL', key); i = i + 2
  else
    return redis.error_reply('unknown write op ' .. tostring(op))
  end
  applied = applied + 1
end
if journal then redis.call('HDEL', journal, entry) end
local ended = redis.call('TIME')
return {applied, (tonumber(ended[1]) - tonumber(started[1])) * 1000000
  + tonumber(ended[2]) - tonumber(started[2])}
"""


# Writes the journal of a part that lands in several scripts, unless that part has
# begun landing (its journal exists) or has landed (its marker exists).
JOURNAL_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""


def encode(writes: Sequence[Write]) -> tuple[list[str], list[str | bytes | int]]:
    """KEYS and ARGV for :data:`APPLY_WRITES_LUA`."""
    keys = _KeyIndex()
    args: list[str | bytes | int] = []
    for write in writes:
        args += _arguments(write, keys.index(write.key))
        if isinstance(write, GuardedPut):
            args.append(keys.index(write.guard))
    return list(keys.positions), args


def pack_apply(sha: str, writes: Sequence[Write], journal: tuple[str, str] | None = None) -> bytes:
    """The RESP bytes of ``EVALSHA sha len(KEYS) *KEYS *ARGV`` for ``writes``, in one pass.

    Byte for byte the command redis-py would send for :func:`encode`'s KEYS and ARGV, but
    redis-py's generic packer costs about a microsecond per argument and a batch carries
    tens of thousands (most of them sorted-set increments, packed here one write at a
    time).

    >>> pack_apply("abc", [ZKeepTop("k", 1)])
    b'*7\\r\\n$7\\r\\nEVALSHA\\r\\n$3\\r\\nabc\\r\\n$1\\r\\n1\\r\\n$1\\r\\nk\\r\\n$1\\r\\nT\\r\\n$1\\r\\n1\\r\\n$2\\r\\n-2\\r\\n'
    """
    keys = _KeyIndex()
    parts: list[bytes] = []
    append = parts.append
    count = 0
    if journal is not None:
        # Applied only while its entry is in the journal, which it then removes.
        journal_key, entry = journal
        append(b"$1\r\nJ\r\n%b%b" % (keys.bulk(journal_key), _bulk(entry)))
        count += 3
    for write in writes:
        if isinstance(write, ZIncr):
            member = write.member.encode()
            amount = repr(write.amount).encode()
            append(
                b"$1\r\nZ\r\n%b$%d\r\n%b\r\n$%d\r\n%b\r\n"
                % (keys.bulk(write.key), len(amount), amount, len(member), member)
            )
            count += 4
        elif isinstance(write, ZKeepTop):
            keep = b"%d" % -(write.keep + 1)
            append(b"$1\r\nT\r\n%b$%d\r\n%b\r\n" % (keys.bulk(write.key), len(keep), keep))
            count += 3
        elif isinstance(write, Put):
            ttl = b"%d" % (write.ttl_s or 0)
            append(
                b"$1\r\nS\r\n%b$%d\r\n%b\r\n$%d\r\n%b\r\n"
                % (keys.bulk(write.key), len(write.value), write.value, len(ttl), ttl)
            )
            count += 4
        else:
            arguments = _arguments(write, keys.index(write.key))
            if isinstance(write, GuardedPut):
                arguments.append(keys.index(write.guard))
            parts += [_bulk(argument) for argument in arguments]
            count += len(arguments)
    key_names = list(keys.positions)
    head = [_bulk(b"EVALSHA"), _bulk(sha), _bulk(len(key_names))]
    head += [_bulk(key) for key in key_names]
    total = len(head) + count
    return b"*%d\r\n" % total + b"".join(head) + b"".join(parts)


def pack_journal(sha: str, journal: str, marker: str | None, calls: Sequence[bytes]) -> bytes:
    """The RESP bytes of ``EVALSHA sha 2 journal marker 0 call0 1 call1 ...``: the
    :data:`JOURNAL_LUA` call that stores a part's packed ``calls`` (each made by
    :func:`pack_apply` with that journal entry), unless the part's ``marker`` exists.

    >>> pack_journal("j", "J", None, [b"c"])
    b'*7\\r\\n$7\\r\\nEVALSHA\\r\\n$1\\r\\nj\\r\\n$1\\r\\n2\\r\\n$1\\r\\nJ\\r\\n$1\\r\\nJ\\r\\n$1\\r\\n0\\r\\n$1\\r\\nc\\r\\n'
    """
    arguments: list[str | bytes | int] = ["EVALSHA", sha, 2, journal, marker or journal]
    for number, call in enumerate(calls):
        arguments += [number, call]
    return b"*%d\r\n" % len(arguments) + b"".join(_bulk(a) for a in arguments)


class _KeyIndex:
    """Positions of keys in KEYS (1-based, first-seen order), and their bulk encodings."""

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}
        self._bulks: dict[str, bytes] = {}

    def index(self, key: str) -> int:
        position = self.positions.get(key)
        if position is None:
            position = self.positions[key] = len(self.positions) + 1
        return position

    def bulk(self, key: str) -> bytes:
        encoded = self._bulks.get(key)
        if encoded is None:
            encoded = self._bulks[key] = _bulk(self.index(key))
        return encoded


def _bulk(value: str | bytes | int) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    elif not isinstance(value, bytes):
        value = str(value).encode()
    return b"$%d\r\n%b\r\n" % (len(value), value)


def _arguments(write: Write, key: int) -> list[str | bytes | int]:
    """One write's ARGV entries; ``key`` is its key's position in KEYS."""
    match write:
        case ZIncr(_, member, amount):
            return ["Z", key, repr(amount), member]
        case ZKeepTop(_, keep):
            return ["T", key, -(keep + 1)]
        case Put(_, value, ttl_s):
            return ["S", key, value, ttl_s or 0]
        case GuardedPut(_, value, ttl_s, _):
            return ["G", key, value, ttl_s]  # the guard's position follows
        case HashIncr(_, field, amount):
            return ["I", key, field, amount]
        case HashSet(_, mapping):
            flat: list[str | bytes | int] = []
            for field, field_value in mapping.items():
                encoded = (
                    field_value if isinstance(field_value, bytes | str | int) else repr(field_value)
                )
                flat += [field, encoded]
            return ["H", key, len(flat), *flat]
        case ZAdd(_, mapping):
            flat = []
            for member, score in mapping.items():
                flat += [repr(float(score)), member]
            return ["A", key, len(flat), *flat]
        case ZRemove(_, members):
            return ["R", key, len(members), *members]
        case SetAdd(_, members):
            return ["SA", key, len(members), *members]
        case SetRemove(_, members):
            return ["SR", key, len(members), *members]
        case Delete(_):
            return ["D", key]
    raise TypeError(f"unknown write {write!r}")
