"""dtaas: the Python SDK of the dtaas appliance's JSON API (``/v1``).

The modules follow the DTaaS SDK's: :mod:`dtaas.app`, :mod:`dtaas.daemon`,
:mod:`dtaas.pipeline`, :mod:`dtaas.dataset`, :mod:`dtaas.model`, :mod:`dtaas.report` (the
servable types), :mod:`dtaas.instance`, :mod:`dtaas.capability`, :mod:`dtaas.prototype`,
:mod:`dtaas.trust`, :mod:`dtaas.utils`; :mod:`dtaas.client` holds the connection and where its
credentials come from, :mod:`dtaas.errors` the exceptions::

    from dtaas.daemon import Daemon
    from dtaas.instance import Resources

    daemon = Daemon.create("hello-daemon:1", name="hello-daemon", config={},
                           resources=Resources(cpu_cores=1, ram=1024))
    instance = daemon.run()
    print(instance.state, instance.ipv4_address)

Credentials: inside a servable, the key the appliance mounts; outside, ``DTAAS_URL`` and
``DTAAS_API_KEY`` (``eval $(dtaas export)``), else the CLI's profile file, else
``dtaas.login(url, login, password)``.
"""

from .client import Client, default_client, login, set_default_client
from .errors import DtaasError

__version__ = "0.1.0"

__all__ = ["Client", "DtaasError", "__version__", "default_client", "login", "set_default_client"]
