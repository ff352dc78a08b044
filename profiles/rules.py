"""Profile rules and their defaults, taken from settings (documented in docs/profiles.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from currents.settings import DEFAULT_EVENT_WEIGHTS, Settings

DAY_MS = 86_400_000
TIERS = ("basic", "silver", "gold", "diamond")
LIFECYCLE_STAGES = ("prospect", "new", "active", "loyal", "at_risk", "dormant", "win_back")
CHANNEL_PREFERENCES = ("online", "offline", "omnichannel")
PRICE_BANDS = ("low", "mid", "high")
TRAIT_WHITELIST = frozenset(
    {"age_band", "gender", "region", "signup_date", "birthday", "marketing_consent"}
)
ONLINE_CHANNELS = frozenset({"web", "app"})
WINDOW_DAYS = 365


@dataclass(frozen=True)
class ProfileRules:
    event_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    lateness_ms: int = 3_600_000
    session_timeout_ms: int = 1_800_000
    affinity_half_life_ms: float = 14 * DAY_MS
    affinity_kept: int = 30
    recent_items: int = 50
    purchased_items: int = 200
    unit_prices_kept: int = 64
    session_items_kept: int = 20
    session_buffer_max: int = 64
    cart_entries_per_line: int = 16
    recency_days: tuple[int, ...] = (7, 30, 90, 180)
    frequency_orders: tuple[int, ...] = (1, 2, 4, 8)
    monetary: tuple[float, ...] = (50.0, 200.0, 500.0, 1000.0)
    new_days: int = 30
    loyal_orders: int = 4
    at_risk_days: int = 60
    dormant_days: int = 180
    win_back_days: int = 30
    tier_thresholds: tuple[tuple[str, float], ...] = (
        ("silver", 200.0),
        ("gold", 1000.0),
        ("diamond", 5000.0),
    )
    points_per_unit: float = 1.0
    base_currency: str = "EUR"
    currency_rates: dict[str, float] = field(default_factory=dict)
    omnichannel_share: float = 0.1

    @classmethod
    def from_settings(cls, settings: Settings) -> ProfileRules:
        return cls(
            event_weights=dict(settings.event_weights),
            lateness_ms=settings.profile_lateness_s * 1000,
            session_timeout_ms=settings.session_timeout_s * 1000,
            affinity_half_life_ms=settings.affinity_half_life_days * DAY_MS,
            affinity_kept=settings.affinity_kept,
            recent_items=settings.recent_items,
            purchased_items=settings.purchased_items,
            recency_days=tuple(settings.rfm_recency_days),
            frequency_orders=tuple(settings.rfm_frequency_orders),
            monetary=tuple(settings.rfm_monetary),
            new_days=settings.lifecycle_new_days,
            loyal_orders=settings.lifecycle_loyal_orders,
            at_risk_days=settings.lifecycle_at_risk_days,
            dormant_days=settings.lifecycle_dormant_days,
            win_back_days=settings.lifecycle_win_back_days,
            tier_thresholds=tuple(
                (tier, settings.tier_thresholds[tier]) for tier in ("silver", "gold", "diamond")
            ),
            points_per_unit=settings.points_per_unit,
            base_currency=settings.base_currency.upper(),
            currency_rates={k.upper(): v for k, v in settings.currency_rates.items()},
            omnichannel_share=settings.omnichannel_share,
        )

    def accepted_currencies(self) -> list[str]:
        """The currencies an order may be in: the base one, then those with a rate."""
        return [self.base_currency, *sorted(set(self.currency_rates) - {self.base_currency})]

    def currency_rate(self, currency: str | None) -> float | None:
        """Rate into the base currency; None when the currency cannot be accepted."""
        if currency is None or currency.upper() == self.base_currency:
            return 1.0
        return self.currency_rates.get(currency.upper())
