"""Runtime settings (paths, URIs, ports) from one object with the CHURN_ prefix."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every runtime knob; read once by an entry point and passed down.

    Each field is also an environment variable: `data_uri` is `CHURN_DATA_URI`.
    """

    model_config = SettingsConfigDict(env_prefix="CHURN_", extra="ignore")

    config_path: str = "model_config.yaml"
    data_uri: str = "data/raw/WA_Fn-UseC_-Telco-Customer-Churn.csv"
    artifact_root: str = "artifacts"
    mlflow_tracking_uri: str = "sqlite:///mlflow.db"
    azure_storage_connection_string: str = ""
    model_name: str = "churn"
    model_uri: str = ""
    host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 8081
    workers: int = 1
    log_level: str = "INFO"
    log_json: bool = False
    # the drift service's database (SQLAlchemy URL): a SQLite file in the embedded default,
    # PostgreSQL on a cluster (postgresql+psycopg://user:password@host/db)
    monitor_db_url: str = "sqlite:///monitor.db"
    monitor_port: int = 8090
    # limits of the predictor server (`churn serve`): a request body larger than
    # max_body_bytes (REST body, gRPC message) is refused with 413 / RESOURCE_EXHAUSTED
    # before it is parsed, and so is a request of more than max_batch_rows customers
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_rows: int = 10_000
