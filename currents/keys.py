"""Every Redis key Currents uses is built here, and documented in docs/redis-layout.md.

A user's keys share the hash tag ``{u:<user_id>}`` and an item's keys share ``{i:<item_id>}``,
so each lives on one Redis Cluster slot and can be found (and erased) by that tag.

>>> user_profile("alice")
'{u:alice}:profile'
>>> user_profile("we{ir}d%")
'{u:we%7Bir%7Dd%25}:profile'
>>> item_neighbours("sku-1", "bought", 3)
'{i:sku-1}:co:bought:g3'
"""

from __future__ import annotations

import re
from functools import lru_cache

PREFIX = "currents"


def _escape(identifier: str) -> str:
    # Braces would end the hash tag early and let two ids share a key; escape them.
    return identifier.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _unescape(escaped: str) -> str:
    return escaped.replace("%7D", "}").replace("%7B", "{").replace("%25", "%")


# Tags are built for every write of every event; the same ids recur constantly.
@lru_cache(maxsize=65_536)
def user_tag(user_id: str) -> str:
    return "{u:" + _escape(user_id) + "}"


@lru_cache(maxsize=65_536)
def item_tag(item_id: str) -> str:
    return "{i:" + _escape(item_id) + "}"


# --- per user ------------------------------------------------------------------------------
def user_profile(user_id: str) -> str:
    """String: the user's state blob (orjson), see streams/profile_state.py."""
    return user_tag(user_id) + ":profile"


def user_of_profile_key(key: str) -> str:
    """The user id inside a ``user_profile`` key (for SCAN-based jobs).

    >>> user_of_profile_key(user_profile("we{ir}d%"))
    'we{ir}d%'
    """
    return _unescape(key[len("{u:") : key.index("}:profile")])


def user_profile_pattern() -> str:
    """SCAN pattern matching every ``user_profile`` key."""
    return "{u:*}:profile"


def user_slate(user_id: str) -> str:
    """String (TTL ``slate_ttl_s``): the user's ranked slate, written by the worker that
    owns the user's partition (currents/slate.py encodes it)."""
    return user_tag(user_id) + ":slate"


def shared_slate(scope: str, variant: str | None) -> str:
    """String: the slate served to strangers and used for back-fill; ``scope`` is
    ``global``, ``c:<category>`` or ``s:<segment>``, per experiment variant.

    >>> shared_slate("c:shoes", None), shared_slate("global", "more-mf")
    ('currents:slate:c:shoes:-', 'currents:slate:global:more-mf')
    """
    return f"{PREFIX}:slate:{_escape(scope)}:{_escape(variant or '-')}"


def slate_refresh(partition: int) -> str:
    """Set: users the API found without a current slate (none, behind their events, or
    older than ``slate_max_age_s``); the worker owning ``partition`` pops them and ranks
    them before the shoppers nobody asked for."""
    return f"{PREFIX}:slates:refresh:p{partition}"


# --- per item ------------------------------------------------------------------------------
def item_of_key(key: str) -> str:
    """The item id inside any per-item key.

    >>> item_of_key(item_record("we{ir}d%")), item_of_key(item_factors("a"))
    ('we{ir}d%', 'a')
    """
    escaped = key[len("{i:") : key.index("}")]
    return escaped.replace("%7D", "}").replace("%7B", "{").replace("%25", "%")


def is_item_record(key: str) -> bool:
    return key.startswith("{i:") and key.endswith("}:item")


def is_item_factors(key: str) -> bool:
    return key.startswith("{i:") and key.endswith("}:mf")


def item_record(item_id: str) -> str:
    """Hash: catalog attributes of one item."""
    return item_tag(item_id) + ":item"


def item_neighbours(item_id: str, kind: str, generation: int) -> str:
    """Sorted set: top-K co-occurring items of one decay generation; ``kind`` is
    ``viewed`` or ``bought``."""
    return f"{item_tag(item_id)}:co:{kind}:g{generation}"


# --- global --------------------------------------------------------------------------------
def popularity(scope: str, generation: int) -> str:
    """Sorted set: decayed popularity of items in ``scope`` (e.g. ``global``)."""
    return f"{PREFIX}:pop:{scope}:g{generation}"


def out_of_stock() -> str:
    """Set: ids of catalog items that are out of stock."""
    return f"{PREFIX}:catalog:oos"


def catalog_changes() -> str:
    """Pub/sub channel: JSON lists of item ids whose catalog record a batch just changed."""
    return f"{PREFIX}:catalog:changes"


def catalog_items() -> str:
    """Sorted set: every catalog item id, scored by its last upsert time (ms)."""
    return f"{PREFIX}:catalog:items"


def worker_heartbeats(group: str) -> str:
    """Sorted set: worker id -> last heartbeat (epoch ms) while it holds partitions."""
    return f"{PREFIX}:workers:{group}"


def consumer_progress(group: str, topic: str) -> str:
    """Hash: partition -> offset of the last record whose effects are in Redis, written with
    the batch's writes; a worker commits it to Kafka when it is assigned the partition."""
    return f"{PREFIX}:progress:{_escape(group)}:{_escape(topic)}"


def part_applied(token: str) -> str:
    """String with a TTL: written in the same script as one part of a worker batch, so a
    retry after a lost reply can tell that the part already landed (streams/handler.py)."""
    return f"{PREFIX}:applied:{_escape(token)}"


def part_journal(token: str) -> str:
    """Hash, entry number -> one packed script call: a part that lands in several
    scripts, until each has applied (streams/sink.py)."""
    return f"{PREFIX}:journal:{_escape(token)}"


def part_journal_pattern() -> str:
    return f"{PREFIX}:journal:*"


def counters() -> str:
    """Hash: engine-wide counters (events processed, DLQ, per type)."""
    return f"{PREFIX}:counters"


def sweep_schedule() -> str:
    """Sorted set: user id -> epoch ms when a clock-driven profile field next changes."""
    return f"{PREFIX}:sweep"


def category_prices(category: str) -> str:
    """Sorted set: item id -> price, for one catalog category (price quantiles)."""
    return f"{PREFIX}:catalog:prices:{_escape(category)}"


def category_prices_pattern() -> str:
    """SCAN pattern matching every ``category_prices`` key."""
    return f"{PREFIX}:catalog:prices:*"


def category_of_prices_key(key: str) -> str:
    """The category inside a ``category_prices`` key.

    >>> category_of_prices_key(category_prices("baby%food"))
    'baby%food'
    """
    escaped = key[len(f"{PREFIX}:catalog:prices:") :]
    return escaped.replace("%7D", "}").replace("%7B", "{").replace("%25", "%")


def price_tertiles() -> str:
    """Hash: category -> "p33,p66" catalog price tertiles."""
    return f"{PREFIX}:catalog:tertiles"


def segment_definitions() -> str:
    """Hash: segment name -> definition JSON."""
    return f"{PREFIX}:segments:defs"


def segment_version() -> str:
    """String counter: bumped on every definition change; workers reload on change."""
    return f"{PREFIX}:segments:version"


def segment_members(name: str) -> str:
    """Sorted set (all scores 0, ordered by member): the users in a segment."""
    return f"{PREFIX}:segment:{name}:members"


def segment_backfill(name: str) -> str:
    """Hash: backfill progress of a segment: state, done, total, version."""
    return f"{PREFIX}:segment:{name}:backfill"


def user_factors(user_id: str) -> str:
    """String: the user's matrix-factorization vector (packed float32)."""
    return user_tag(user_id) + ":mf"


def item_factors(item_id: str) -> str:
    """String: the item's matrix-factorization vector (packed float32)."""
    return item_tag(item_id) + ":mf"


def item_next(item_id: str, generation: int) -> str:
    """Sorted set: items viewed after this one in a session, decayed (one generation)."""
    return f"{item_tag(item_id)}:next:g{generation}"


def category_new_items(category: str) -> str:
    """Sorted set: the newest catalog items of a category, by upsert time (ms)."""
    return f"{PREFIX}:catalog:new:{_escape(category)}"


def recommendation(recommendation_id: str) -> str:
    """String (JSON, 7-day TTL): a served list and its experiment variant (attribution);
    it names no shopper."""
    return f"{PREFIX}:rec:{recommendation_id}"


def recommendation_pattern() -> str:
    """SCAN pattern matching every ``recommendation`` key."""
    return f"{PREFIX}:rec:*"


def business_rules() -> str:
    """Hash: rule id -> business rule JSON (pins, boosts, promoted slots, blocklists)."""
    return f"{PREFIX}:rules"


def experiments() -> str:
    """Hash: experiment name -> definition JSON (variants, weights, blends)."""
    return f"{PREFIX}:experiments"


def experiment_stats(name: str) -> str:
    """Hash: ``<variant>:<metric>`` -> count of impressions, clicks and purchases."""
    return f"{PREFIX}:experiment:{name}:stats"


def config_version() -> str:
    """String counter: bumped when rules or experiments change; API replicas reload."""
    return f"{PREFIX}:config:version"


def campaigns() -> str:
    """Hash: campaign id -> current definition JSON ({id, version, updated_at, campaign})."""
    return f"{PREFIX}:campaigns"


def campaign_versions(campaign_id: str) -> str:
    """List: every version of a campaign, oldest first (deletions included)."""
    return f"{PREFIX}:campaign:{campaign_id}:versions"


def campaigns_version() -> str:
    """String counter: bumped on every campaign change; workers reload on change."""
    return f"{PREFIX}:campaigns:version"


def campaign_timers() -> str:
    """Sorted set: ``<campaign>|<user>`` -> due time (ms) of a pending delayed trigger."""
    return f"{PREFIX}:campaign:timers"


def campaign_stats(campaign_id: str) -> str:
    """Hash: per-campaign counters (sent, holdout, no_consent, capped, ...)."""
    return f"{PREFIX}:campaign:{campaign_id}:stats"


def campaign_budget(campaign_id: str) -> str:
    """Set: ids of the promotions a budgeted campaign sent (its size is the budget used)."""
    return f"{PREFIX}:campaign:{campaign_id}:budget"


def user_campaign_sends(user_id: str) -> str:
    """Sorted set (TTL 366 days): ``<campaign>|<promotion id>`` -> send time (ms); the
    frequency caps, checked atomically before a promotion goes out."""
    return user_tag(user_id) + ":campaign:sends"


def item_watchers(item_id: str) -> str:
    """Sorted set: user -> time (ms) they last viewed or carted the item, newest 500 kept
    (price-drop campaigns only)."""
    return item_tag(item_id) + ":watchers"


def item_watchers_pattern() -> str:
    """SCAN pattern matching every ``item_watchers`` key (erasure removes a shopper from
    all of them: entries outlive the profile's list of recent views)."""
    return "{i:*}:watchers"


# --- API ---------------------------------------------------------------------------------
def rate_limit(key_name: str, window_s: int) -> str:
    """String counter (5 s TTL): requests leased by API replicas for one key in one second."""
    return f"{PREFIX}:ratelimit:{{k:{_escape(key_name)}}}:{window_s}"


def audit_log() -> str:
    """Stream: audit records of privacy operations (action, key name, pseudonymous subject)."""
    return f"{PREFIX}:audit"


# --- privacy ---------------------------------------------------------------------------------
def erasure_marker(subject: str) -> str:
    """String (TTL ``erasure_marker_days``): epoch ms of a user's erasure; older events
    for the user are dropped so a replay cannot resurrect them. Named by the user's keyed
    subject (``currents/subjects.py``), never by their id."""
    return f"{PREFIX}:erased:{subject}"


def legacy_erasure_marker_pattern() -> str:
    """SCAN pattern over markers named by the raw id (``{u:<id>}:erased``), which earlier
    versions wrote; the API renames them at start (``serving/privacy.py``)."""
    return "{u:*}:erased"


def user_of_legacy_erasure_marker(key: str) -> str:
    """The user id in a ``legacy_erasure_marker_pattern`` key.

    >>> user_of_legacy_erasure_marker(user_tag("we{ir}d%") + ":erased")
    'we{ir}d%'
    """
    return _unescape(key[len("{u:") : -len("}:erased")])


def legacy_markers_renamed() -> str:
    """String: set once every legacy erasure marker has been renamed, so that later
    starts skip the keyspace scan."""
    return f"{PREFIX}:privacy:legacy-markers-renamed"


def subject_key() -> str:
    """String: the random key of ``currents/subjects.py`` when ``CURRENTS_PSEUDONYM_KEY``
    is not set (every process reads the one the first stored)."""
    return f"{PREFIX}:privacy:subject-key"


def user_key_pattern(user_id: str) -> str:
    """SCAN pattern matching every key of one user (glob characters escaped)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", user_tag(user_id)) + "*"


def timer_member(timer: str, user_id: str) -> str:
    """A ``campaign_timers`` member: ``<timer>|<user>`` (the timer a campaign id, or a
    quiet-hours or price-drop timer name)."""
    return f"{timer}|{user_id}"


def timer_member_pattern(user_id: str) -> str:
    """ZSCAN pattern matching every ``campaign_timers`` member of one user."""
    return "*|" + re.sub(r"([*?\[\]\\])", r"\\\1", user_id)


def timer_of_member(member: str) -> str:
    """The timer name of a ``campaign_timers`` member.

    >>> timer_of_member(timer_member("pd:c:ab12:1999", "u|1"))
    'pd:c:ab12:1999'
    """
    return member.split("|", 1)[0]


# --- the data map ------------------------------------------------------------------------------
# Where a user id can be stored, for every builder above: under the user's hash tag (the
# key is named by it: erasure deletes every key of the tag), as a member of a shared
# structure (erasure removes the member), or nowhere (None). ``profiles/erasure.py`` turns
# it into the writes both erasure paths apply (the API's, serving/privacy.py, and the
# worker's second pass); tests/unit/test_data_map.py fails when a builder is missing here
# or a structure holding user ids has no way to be erased.
TAGGED, MEMBER = "tagged", "member"
DATA_MAP: dict[str, str | None] = {
    # per user, under {u:<id>}
    "user_profile": TAGGED,
    "user_slate": TAGGED,
    "user_factors": TAGGED,
    "user_campaign_sends": TAGGED,
    # user ids as members of shared structures
    "sweep_schedule": MEMBER,
    "slate_refresh": MEMBER,
    "segment_members": MEMBER,
    "campaign_timers": MEMBER,
    "item_watchers": MEMBER,
    # named by a keyed hash of the id (currents/subjects.py), or holding pseudonyms only
    "erasure_marker": None,
    "audit_log": None,
    "subject_key": None,
    "legacy_markers_renamed": None,
    # no user ids: items, catalog, aggregates, configuration, bookkeeping
    "shared_slate": None,
    "item_record": None,
    "item_neighbours": None,
    "popularity": None,
    "out_of_stock": None,
    "catalog_changes": None,
    "catalog_items": None,
    "worker_heartbeats": None,
    "consumer_progress": None,
    "part_applied": None,
    "part_journal": None,  # the writes of a part in flight: deleted once they land
    "counters": None,
    "category_prices": None,
    "price_tertiles": None,
    "segment_definitions": None,
    "segment_version": None,
    "segment_backfill": None,
    "item_factors": None,
    "item_next": None,
    "category_new_items": None,
    "recommendation": None,  # served lists name no shopper (serving/config_store.py)
    "business_rules": None,
    "experiments": None,
    "experiment_stats": None,
    "config_version": None,
    "campaigns": None,
    "campaign_versions": None,
    "campaigns_version": None,
    "campaign_stats": None,
    "campaign_budget": None,
    "rate_limit": None,  # per API key name
}
# Helpers that build no key of their own: tags, patterns, parsers, member encodings.
NOT_KEYS = frozenset(
    {
        "user_tag",
        "item_tag",
        "user_of_profile_key",
        "user_profile_pattern",
        "item_of_key",
        "is_item_record",
        "is_item_factors",
        "part_journal_pattern",
        "category_prices_pattern",
        "category_of_prices_key",
        "recommendation_pattern",
        "item_watchers_pattern",
        "legacy_erasure_marker_pattern",
        "user_of_legacy_erasure_marker",
        "user_key_pattern",
        "timer_member",
        "timer_member_pattern",
        "timer_of_member",
    }
)
