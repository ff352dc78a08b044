"""One settings class, read from ``CURRENTS_*`` environment variables.

Every process (worker, API, generator, supervisor) builds its settings with
:func:`load_settings`; the README's configuration table lists every field.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "product_viewed": 1.0,
    "product_clicked": 2.0,
    "product_favorited": 3.0,
    "product_added": 4.0,
    "order_completed": 6.0,
    "product_removed": -2.0,
}


class Settings(BaseSettings):
    """Runtime configuration. Field ``foo_bar`` is set by ``CURRENTS_FOO_BAR``."""

    # Errors never echo the input: it holds the SASL password and Redis URL credentials.
    model_config = SettingsConfigDict(
        env_prefix="CURRENTS_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    # --- servers -------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers; unset means `currents up` embeds a broker."
    )
    redis_url: str | None = Field(
        None, description="Redis URL (redis:// or a cluster node with ?cluster=1); unset embeds."
    )
    data_dir: Path = Field(Path(".currents"), description="Embedded servers' data and logs.")

    # --- encryption and authentication to the servers (docs/security.md) -----------------
    redis_tls_ca_file: FilePath | None = Field(
        None, description="CA bundle that signed Redis's certificate (rediss:// URLs)."
    )
    redis_tls_cert_file: FilePath | None = Field(
        None, description="Client certificate for Redis mutual TLS (PEM)."
    )
    redis_tls_key_file: FilePath | None = Field(
        None, description="Private key of the Redis client certificate (unencrypted PEM)."
    )
    redis_tls_check_hostname: bool = True
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_tls_ca_file: FilePath | None = Field(
        None, description="CA bundle that signed the brokers' certificates (SSL, SASL_SSL)."
    )
    kafka_tls_cert_file: FilePath | None = Field(
        None, description="Client certificate for Kafka mutual TLS (PEM)."
    )
    kafka_tls_key_file: FilePath | None = Field(
        None, description="Private key of the Kafka client certificate (unencrypted PEM)."
    )
    kafka_tls_check_hostname: bool = True

    # --- topics --------------------------------------------------------------------------
    events_topic: str = "currents.events"
    dlq_topic: str = "currents.events.dlq"
    events_partitions: int = Field(4, ge=1, le=1024)
    producer_idempotence: bool = Field(
        False,
        description="Idempotent producer (needs a broker with InitProducerId; Tansu lacks it).",
    )

    # --- worker --------------------------------------------------------------------------
    worker_group: str = Field("currents-worker", description="Consumer group / Faust app id.")
    # Faust hands over a batch only after ~0.2 ms of its own work per record, all on the
    # event loop without a pause: 500 records stay inside the default block budget.
    worker_batch_size: int = Field(
        500, ge=1, le=100_000, description="Records Faust gathers per batch at most."
    )
    worker_batch_within_s: float = Field(0.05, gt=0, le=10)
    worker_fetch_max_wait_ms: int = Field(50, ge=1, le=10_000)
    worker_stop_grace_s: float = Field(10.0, gt=0, le=120)
    worker_heartbeat_s: float = Field(2.0, gt=0, le=60)
    worker_max_block_ms: float = Field(
        200.0,
        ge=10,
        le=10_000,
        description="Longest the worker's event loop may stay busy; batches shrink to fit.",
    )
    worker_nice: int = Field(
        0,
        ge=0,
        le=19,
        description=(
            "CPU niceness the worker adds to itself at start. Where it shares cores with the"
            " API and Redis, 10 keeps serving latency first: the worker takes idle CPU and"
            " falls behind (consumer lag) under overload rather than slowing requests."
        ),
    )
    worker_max_script_ms: float = Field(
        5.0,
        ge=0.1,
        le=10_000,
        description=(
            "Longest one part's writes may hold Redis (a single server runs one command at"
            " a time: the API's reads wait behind them); parts shrink to fit."
        ),
    )
    worker_batch_cost: int = Field(
        20_000,
        ge=1,
        le=1_000_000,
        description="Most work (events plus order lines) applied in one part of a batch.",
    )
    worker_redis_timeout_s: float = Field(
        10.0, gt=0, le=300, description="The worker's Redis socket timeout (network only)."
    )

    # --- models --------------------------------------------------------------------------
    event_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    popularity_half_life_h: float = Field(24.0, gt=0)
    cooccurrence_half_life_h: float = Field(24.0 * 30, gt=0)
    cooccurrence_window: int = Field(20, ge=1, le=200)
    cooccurrence_neighbours: int = Field(120, ge=1, le=1000)
    cooccurrence_pairs_per_order: int = Field(
        60,
        ge=1,
        le=10_000,
        description="Bought-together pairs one order may make (recent purchases first).",
    )
    session_successors: int = Field(120, ge=1, le=1000)
    mf_factors: int = Field(16, ge=2, le=256)
    mf_negatives: int = Field(1, ge=0, le=20)
    mf_learning_rate: float = Field(0.5, gt=0, le=5)
    mf_seed: int = 42
    blend: dict[str, float] = Field(
        default_factory=lambda: {
            "cooccurrence": 1.0,
            "session": 0.5,
            "mf": 0.1,
            "content": 0.4,
            "trending": 0.1,
        },
        description="Default hybrid blend: model -> weight.",
    )
    # --- slates (docs/recommenders.md) ----------------------------------------------------
    slates: bool = Field(
        True, description="Materialise slates in the worker (off: the API ranks every request)."
    )
    slate_size: int = Field(100, ge=1, le=500, description="Items in a materialised slate.")
    slate_ttl_s: int = Field(
        7 * 86_400, ge=60, description="A slate expires after this long without an event."
    )
    slate_max_age_s: float = Field(
        300.0, gt=0, description="A slate read older than this is ranked again by the worker."
    )
    slate_max_behind_ms: int = Field(
        250,
        ge=0,
        description="A slate missing the shopper's newest event for longer is ranked on the spot.",
    )
    slate_catch_up_per_s: float = Field(
        0.0,
        ge=0,
        description=(
            "Rankings per second and API process for shoppers whose slate is behind (each"
            " holds the event loop for milliseconds; by default the worker ranks them)."
        ),
    )
    slate_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Most of the worker's time slates take while batches are waiting.",
    )
    recent_items: int = Field(50, ge=1, le=500)
    purchased_items: int = Field(200, ge=1, le=5000)
    dedup_event_ids: int = Field(64, ge=1, le=10_000)

    # --- profiles (docs/profiles.md) ------------------------------------------------------
    profile_lateness_s: int = Field(3600, ge=0, description="Out-of-order tolerance, seconds.")
    session_timeout_s: int = Field(1800, ge=60)
    affinity_half_life_days: float = Field(14.0, gt=0)
    affinity_kept: int = Field(30, ge=10, le=500)
    rfm_recency_days: list[int] = Field(default_factory=lambda: [7, 30, 90, 180])
    rfm_frequency_orders: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])
    rfm_monetary: list[float] = Field(default_factory=lambda: [50.0, 200.0, 500.0, 1000.0])
    lifecycle_new_days: int = Field(30, ge=1)
    lifecycle_loyal_orders: int = Field(4, ge=1)
    lifecycle_at_risk_days: int = Field(60, ge=1)
    lifecycle_dormant_days: int = Field(180, ge=1)
    lifecycle_win_back_days: int = Field(30, ge=1)
    tier_thresholds: dict[str, float] = Field(
        default_factory=lambda: {"silver": 200.0, "gold": 1000.0, "diamond": 5000.0}
    )
    points_per_unit: float = Field(1.0, ge=0)
    base_currency: str = Field("EUR", min_length=3, max_length=3)
    currency_rates: dict[str, float] = Field(
        default_factory=dict, description='Currency -> base-currency rate, e.g. {"USD": 0.92}.'
    )
    omnichannel_share: float = Field(0.1, gt=0, lt=0.5)
    segments_file: Path | None = Field(None, description="YAML/JSON segment definitions.")
    segments_topic: str = "currents.segments"
    profile_changes_topic: str = "currents.profile-changes"
    promotions_topic: str = "currents.promotions"
    promotions_dlq_topic: str = "currents.promotions.dlq"
    campaign_timezone: str = Field(
        "UTC", description="Zone for quiet hours and birthdays when the user's region is unknown."
    )
    campaign_daily_cap: int = Field(3, ge=1, le=100)
    attribution_days: float = Field(7.0, gt=0, le=90)
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)
    webhook_retries: int = Field(4, ge=0, le=10)
    webhook_backoff_s: float = Field(0.5, ge=0, le=60)
    webhook_concurrency: int = Field(16, ge=1, le=256)
    sweep_interval_s: float = Field(1.0, gt=0, le=3600)

    # --- API -----------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=0, le=65535)
    api_keys: str = Field(
        "",
        description="Semicolon-separated `name:sha256-hex:scope+scope` entries (keys are hashed).",
    )
    demo_page_key: str = Field(
        "",
        description="Demo only: a read+ingest key handed to the storefront page at `/`.",
    )
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_events_per_request: int = Field(500, ge=1)
    max_request_body_bytes: int = Field(
        65_536, ge=1024, description="Body limit of every route except `POST /v1/events`."
    )
    rate_limit_per_s: int = Field(
        5000, ge=0, description="Requests per second per API key, across replicas; 0 is off."
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (JSON list); none by default."
    )
    erasure_marker_days: int = Field(
        30, ge=1, description="Erasure markers outlive the topic's retention by this much."
    )

    # --- logging -------------------------------------------------------------------------
    pseudonym_key: str = Field(
        "",
        description="Key of the hash that pseudonymizes user ids in logs and the audit log.",
    )
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("event_weights")
    @classmethod
    def _weights_are_known_types(cls, weights: dict[str, float]) -> dict[str, float]:
        from schemas.events import EVENT_TYPES

        unknown = sorted(set(weights) - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event types in event_weights: {unknown}")
        return weights

    @field_validator("rfm_recency_days", "rfm_frequency_orders", "rfm_monetary")
    @classmethod
    def _four_ascending_thresholds(cls, values: list[float]) -> list[float]:
        if len(values) != 4 or sorted(values) != list(values):
            raise ValueError("needs four ascending thresholds (scores 1-5)")
        return values

    @field_validator("tier_thresholds")
    @classmethod
    def _tiers_are_known(cls, thresholds: dict[str, float]) -> dict[str, float]:
        if set(thresholds) != {"silver", "gold", "diamond"}:
            raise ValueError("needs exactly silver, gold and diamond thresholds")
        if not thresholds["silver"] <= thresholds["gold"] <= thresholds["diamond"]:
            raise ValueError("tier thresholds must ascend: silver <= gold <= diamond")
        return thresholds

    @model_validator(mode="after")
    def _server_security_is_consistent(self) -> Settings:
        """Refuse settings that look encrypted or authenticated but would not be."""
        problems = [
            *_tls_problems(
                "REDIS",
                uses_tls=bool(self.redis_url) and urlsplit(self.redis_url or "").scheme == "rediss",
                files=(self.redis_tls_ca_file, self.redis_tls_cert_file, self.redis_tls_key_file),
                why_not="CURRENTS_REDIS_URL is not a rediss:// URL",
            ),
            *_tls_problems(
                "KAFKA",
                uses_tls=self.kafka_security_protocol in {"SSL", "SASL_SSL"},
                files=(self.kafka_tls_ca_file, self.kafka_tls_cert_file, self.kafka_tls_key_file),
                why_not=f"CURRENTS_KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol}",
            ),
        ]
        sasl = self.kafka_security_protocol in {"SASL_PLAINTEXT", "SASL_SSL"}
        credentials = bool(self.kafka_sasl_username or self.kafka_sasl_password.get_secret_value())
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()):
            problems.append(
                f"CURRENTS_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "CURRENTS_KAFKA_SASL_USERNAME and CURRENTS_KAFKA_SASL_PASSWORD"
            )
        if credentials and not sasl:
            problems.append(
                "CURRENTS_KAFKA_SASL_USERNAME/PASSWORD are set but "
                f"CURRENTS_KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol} "
                "(use SASL_SSL or SASL_PLAINTEXT)"
            )
        if not self.kafka_bootstrap and self.kafka_security_protocol != "PLAINTEXT":
            problems.append(
                "the embedded broker (CURRENTS_KAFKA_BOOTSTRAP unset) speaks PLAINTEXT only"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def require_servers(self) -> tuple[str, str]:
        """The Kafka bootstrap and Redis URL, or a clear error when either is missing."""
        from currents.errors import ConfigurationError

        if not self.kafka_bootstrap or not self.redis_url:
            raise ConfigurationError(
                "CURRENTS_KAFKA_BOOTSTRAP and CURRENTS_REDIS_URL must be set "
                "(or run `currents up`, which starts embedded servers when they are not)."
            )
        return self.kafka_bootstrap, self.redis_url


def _tls_problems(
    server: str, *, uses_tls: bool, files: tuple[Path | None, ...], why_not: str
) -> list[str]:
    _ca, cert, key = files
    problems = []
    if not uses_tls and any(files):
        problems.append(f"CURRENTS_{server}_TLS_* files are set but {why_not}")
    if key and not cert:
        problems.append(f"CURRENTS_{server}_TLS_KEY_FILE needs CURRENTS_{server}_TLS_CERT_FILE")
    return problems


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    return Settings()
