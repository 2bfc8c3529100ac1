# bigmodels in a container: the app, with the dispatcher (and an embedded Ray head) started on first need.
#   docker build -t bigmodels .
#   docker run -p 8501:8501 -v /path/to/mnist:/data/mnist:ro -v bigmodels-runs:/runs \
#              -e BIGMODELS_OPERATOR_TOKEN=... bigmodels
# GPU: add --gpus all (the torch wheel in requirements.txt is a CUDA build).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BIGMODELS_HOME=/runs BIGMODELS_DATA_DIR=/data/mnist
RUN useradd --create-home --uid 1000 bigmodels && mkdir -p /runs /data/mnist && chown bigmodels /runs
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY --chown=bigmodels . .
USER bigmodels
EXPOSE 8501
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health')"
CMD ["streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "8501"]
