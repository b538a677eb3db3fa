"""pytest set-up of the integration tests.

Loads the Airbyte CDK's standard-test plugin, which parametrizes the ``scenario`` argument of the
standard tests (``test_standard_suite.py``) from ``acceptance-test-config.yml`` and adds its
command-line options (``--connector-image``, ``--read-from-streams``, ...). The docker image tests
of that suite are deselected by ``-m "not image_tests"`` in pytest.ini: there is no docker engine
here, and they need the network.
"""

pytest_plugins = ["airbyte_cdk.test.standard_tests.pytest_hooks"]
