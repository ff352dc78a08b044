"""Caps and budgets that hold with several workers: atomic checks in Redis before a
promotion goes out.

The engine checks caps on the user's state, which one worker owns; during a rebalance two
workers may briefly act for the same user, and a campaign budget is shared by all users.
So before sending, the worker reserves every promotion:

1. the user's caps, in one script per user on ``{u:<id>}:campaign:sends`` (one slot):
   adds ``<campaign>|<promotion id>`` only if the campaign's window count and the daily
   count stay within their caps;
2. the campaign budget, in one script per campaign on its ``budget`` set (one slot): adds
   the promotion id only while the set is smaller than the budget. When the budget
   refuses, the cap reservation of step 1 is released.

Each script touches one key, so it is valid on a Redis Cluster (nothing reads across
slots inside a script). Both are idempotent by promotion id: a batch retried after a
failed write reserves the same promotions again and gets the same answers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from currents import keys
from currents.redis_client import AsyncRedis, run_scripts

SENDS_TTL_MS = 366 * 86_400_000
DAY_MS = 86_400_000

# KEYS[1] user sends; ARGV: newest promotion time, day ms, daily cap, ttl ms, then per
# promotion: member, campaign prefix ("<campaign>|"), window start, cap count, its time.
# Each promotion is scored and counted at its own (event) time, so the answers do not
# depend on which promotions happen to share a batch. Returns 1/0 each.
CAPS_LUA = """
local key = KEYS[1]
local newest = tonumber(ARGV[1])
local day_ms = tonumber(ARGV[2])
local daily_cap = tonumber(ARGV[3])
local granted = {}
redis.call('ZREMRANGEBYSCORE', key, '-inf', newest - tonumber(ARGV[4]))
local i = 5
while i <= #ARGV do
  local member, prefix = ARGV[i], ARGV[i + 1]
  local window_start, cap = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local at = tonumber(ARGV[i + 4])
  if redis.call('ZSCORE', key, member) then
    granted[#granted + 1] = 1
  else
    local ok = redis.call('ZCOUNT', key, '(' .. (at - day_ms), at) < daily_cap
    if ok then
      local used = 0
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, '(' .. window_start, at)) do
        if string.sub(m, 1, #prefix) == prefix then used = used + 1 end
      end
      ok = used < cap
    end
    if ok then
      redis.call('ZADD', key, at, member)
      granted[#granted + 1] = 1
    else
      granted[#granted + 1] = 0
    end
  end
  i = i + 5
end
redis.call('PEXPIRE', key, tonumber(ARGV[4]))
return granted
"""

# KEYS[1] campaign budget set; ARGV: budget, promotion ids. Returns 1/0 each.
BUDGET_LUA = """
local budget = tonumber(ARGV[1])
local granted = {}
for i = 2, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then
    granted[#granted + 1] = 1
  elseif redis.call('SCARD', KEYS[1]) < budget then
    redis.call('SADD', KEYS[1], ARGV[i])
    granted[#granted + 1] = 1
  else
    granted[#granted + 1] = 0
  end
end
return granted
"""


@dataclass(frozen=True)
class Request:
    """One promotion to reserve, with the limits of its campaign."""

    user_id: str
    campaign_id: str
    promotion_id: str
    now: int
    window_ms: int
    cap: int
    budget: int | None


class Reserver:
    def __init__(self, redis: AsyncRedis, daily_cap: int) -> None:
        self.redis = redis
        self.daily_cap = daily_cap
        self._caps: Any = None
        self._budget: Any = None

    async def reserve(self, requests: list[Request]) -> dict[str, str]:
        """Promotion id -> why it is refused (``capped`` or ``budget_exhausted``), for the
        refused ones only. Three pipelined round trips at most."""
        if not requests:
            return {}
        if self._caps is None:
            self._caps = self.redis.register_script(CAPS_LUA)
            self._budget = self.redis.register_script(BUDGET_LUA)
        refused: dict[str, str] = {}
        by_user: dict[str, list[Request]] = defaultdict(list)
        for request in sorted(requests, key=lambda r: (r.now, r.promotion_id)):
            by_user[request.user_id].append(request)
        users = sorted(by_user)
        cap_calls = []
        for user in users:
            batch = by_user[user]
            newest = max(r.now for r in batch)
            args: list[Any] = [newest, DAY_MS, self.daily_cap, SENDS_TTL_MS]
            for r in batch:
                args += [_member(r), f"{r.campaign_id}|", r.now - r.window_ms, r.cap, r.now]
            cap_calls.append((self._caps, [keys.user_campaign_sends(user)], args))
        cap_answers = await run_scripts(self.redis, cap_calls)
        for user, answers in zip(users, cap_answers, strict=True):
            for request, ok in zip(by_user[user], answers, strict=True):
                if not int(ok):
                    refused[request.promotion_id] = "capped"
        budgeted: dict[str, list[Request]] = defaultdict(list)
        for request in requests:
            if request.budget is not None and request.promotion_id not in refused:
                budgeted[request.campaign_id].append(request)
        if not budgeted:
            return refused
        campaigns = sorted(budgeted)
        budget_calls = []
        for campaign in campaigns:
            batch = budgeted[campaign]
            args = [batch[0].budget, *(r.promotion_id for r in batch)]
            budget_calls.append((self._budget, [keys.campaign_budget(campaign)], args))
        budget_answers = await run_scripts(self.redis, budget_calls)
        released = self.redis.pipeline(transaction=False)
        any_released = False
        for campaign, answers in zip(campaigns, budget_answers, strict=True):
            for request, ok in zip(budgeted[campaign], answers, strict=True):
                if not int(ok):
                    refused[request.promotion_id] = "budget_exhausted"
                    released.zrem(keys.user_campaign_sends(request.user_id), _member(request))
                    any_released = True
        if any_released:
            await released.execute()
        return refused


def _member(request: Request) -> str:
    return f"{request.campaign_id}|{request.promotion_id}"
