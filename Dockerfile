# One image for the worker, the API and the generator.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY currents currents
COPY schemas schemas
COPY streams streams
COPY online_models online_models
COPY serving serving
COPY benchmarks benchmarks
RUN pip install . && useradd --system --uid 10001 currents
USER currents
ENV CURRENTS_API_HOST=0.0.0.0 CURRENTS_DATA_DIR=/tmp/currents
EXPOSE 8000
ENTRYPOINT ["currents"]
CMD ["api"]
