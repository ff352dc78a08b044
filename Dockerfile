# One image for the worker, the API, topic set-up and the generator.
# The build context is the whole project minus .dockerignore, copied at once: a new
# package directory reaches the image without a line here. tests/integration/
# test_image.py rebuilds what this file installs (no Docker needed) and runs it.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY . .
RUN pip install . && useradd --system --uid 10001 currents
USER currents
# numba caches the ranking kernels it compiles (online_models/kernels.py); the installed
# package is not writable by the user, so the cache lives under /tmp.
ENV CURRENTS_API_HOST=0.0.0.0 CURRENTS_DATA_DIR=/tmp/currents NUMBA_CACHE_DIR=/tmp/numba
EXPOSE 8000
ENTRYPOINT ["currents"]
CMD ["api"]
