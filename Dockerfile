# The connector image on Airbyte's Python connector base image (Python 3.13): installed as a
# wheel (non-editable) and run through the console script named like the connector.
FROM docker.io/airbyte/python-connector-base:4.1.0@sha256:1d1aa21d34e851df4e8a87b391c27724c06e2597608e7161f4d167be853bd7b6

WORKDIR /airbyte/integration_code
COPY setup.py README.md main.py ./
COPY schemas ./schemas
COPY source_bitbucket ./source_bitbucket
RUN pip install --no-cache-dir . && rm -rf build

ENV AIRBYTE_ENTRYPOINT="source-bitbucket"
ENTRYPOINT ["source-bitbucket"]

LABEL io.airbyte.name=airbyte/source-bitbucket
LABEL io.airbyte.version=0.4.0
