"""Packaging for source-bitbucket (console script ``source-bitbucket``).

The stream schemas live in the top-level ``schemas/`` folder; ``source_bitbucket/schemas`` is a
link to it, so the CDK's schema loader finds them in a source checkout, an editable install and
an installed wheel alike.
"""

from setuptools import find_packages, setup

MAIN_REQUIREMENTS = [
    "airbyte-cdk==7.39.1",
    "pendulum>=3.0,<4",
    "requests>=2.31,<3",
]

TEST_REQUIREMENTS = [
    "pytest>=8,<10",
    "pytest-timeout>=2.3,<3",
    "responses>=0.25,<1",
    "requests-mock>=1.12,<2",
    # Schema validation of metadata.yaml (integration_tests/test_packaging.py); both also come with airbyte-cdk.
    "jsonschema>=4.18,<5",
    "referencing>=0.36.2",
    # PyAirbyte, for integration_tests/test_pyairbyte.py (it supports Python < 3.13 only; the test skips elsewhere).
    'airbyte>=0.71.3,<0.72; python_version < "3.13"',
]

setup(
    name="source-bitbucket",
    version="0.4.0",
    description="Airbyte source connector for Bitbucket Cloud: repositories, pull requests, commits, deployments, members.",
    license="MIT",
    python_requires=">=3.10,<3.14",
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "License :: OSI Approved :: MIT License",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Software Development :: Version Control :: Git",
    ],
    packages=find_packages(include=["source_bitbucket", "source_bitbucket.*"]),
    package_data={"source_bitbucket": ["spec.json", "schemas/*.json", "schemas/shared/*.json"]},
    install_requires=MAIN_REQUIREMENTS,
    extras_require={"tests": TEST_REQUIREMENTS},
    entry_points={"console_scripts": ["source-bitbucket=source_bitbucket.run:run"]},
)
