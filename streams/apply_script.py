"""A batch of writes as one Lua script call: one command, one reply, applied atomically.

Sending thousands of commands through redis-py's asyncio pipeline costs ~30 µs each in
client-side packing and reply handling; a script call carries the same writes as
arguments and Redis applies them in one go. Keys travel in KEYS so the call is valid on a
Redis Cluster when every key shares a slot (the sink groups writes by slot there).

>>> keys_, args = encode([ZIncr("k", "m", 1.5), ZKeepTop("k", 10), Put("p", b"x", 60)])
>>> keys_, args
(['k', 'p'], ['Z', 1, '1.5', 'm', 'T', 1, -11, 'S', 2, b'x', 60])
"""

from __future__ import annotations

from collections.abc import Sequence

from currents.writes import (
    Delete,
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
local i = 1
local n = #ARGV
local applied = 0
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
return applied
"""


def encode(writes: Sequence[Write]) -> tuple[list[str], list[str | bytes | int]]:
    """KEYS and ARGV for :data:`APPLY_WRITES_LUA`."""
    key_index: dict[str, int] = {}
    args: list[str | bytes | int] = []

    def index(key: str) -> int:
        position = key_index.get(key)
        if position is None:
            position = key_index[key] = len(key_index) + 1
        return position

    for write in writes:
        match write:
            case ZIncr(key, member, amount):
                args += ["Z", index(key), repr(amount), member]
            case ZKeepTop(key, keep):
                args += ["T", index(key), -(keep + 1)]
            case Put(key, value, ttl_s):
                args += ["S", index(key), value, ttl_s or 0]
            case HashIncr(key, field, amount):
                args += ["I", index(key), field, amount]
            case HashSet(key, mapping):
                flat: list[str | bytes | int] = []
                for field, field_value in mapping.items():
                    encoded = (
                        field_value
                        if isinstance(field_value, bytes | str | int)
                        else repr(field_value)
                    )
                    flat += [field, encoded]
                args += ["H", index(key), len(flat), *flat]
            case ZAdd(key, mapping):
                flat = []
                for member, score in mapping.items():
                    flat += [repr(float(score)), member]
                args += ["A", index(key), len(flat), *flat]
            case ZRemove(key, members):
                args += ["R", index(key), len(members), *members]
            case SetAdd(key, members):
                args += ["SA", index(key), len(members), *members]
            case SetRemove(key, members):
                args += ["SR", index(key), len(members), *members]
            case Delete(key):
                args += ["D", index(key)]
            case _:
                raise TypeError(f"unknown write {write!r}")
    return list(key_index), args


def pack_evalsha(sha: str, keys: list[str], args: list[str | bytes | int]) -> bytes:
    """The RESP bytes of ``EVALSHA sha len(keys) *keys *args``.

    redis-py's generic packer costs about a microsecond per argument; a batch carries
    tens of thousands, so the sink packs its one command itself.

    >>> pack_evalsha("abc", ["k"], ["Z", 1])
    b'*6\\r\\n$7\\r\\nEVALSHA\\r\\n$3\\r\\nabc\\r\\n$1\\r\\n1\\r\\n$1\\r\\nk\\r\\n$1\\r\\nZ\\r\\n$1\\r\\n1\\r\\n'
    """
    parts: list[bytes] = []
    append = parts.append
    items: list[str | bytes | int] = ["EVALSHA", sha, len(keys), *keys, *args]
    for item in items:
        if isinstance(item, bytes):
            data = item
        elif isinstance(item, str):
            data = item.encode()
        else:
            data = str(item).encode()
        append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"*%d\r\n" % len(items) + b"".join(parts)
