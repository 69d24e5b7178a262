from dtaas.app import App
from dtaas.daemon import Daemon
from dtaas.instance import Resources
from dtaas.capability import resolve_delegation_request


resources = Resources(cpu_cores=1, ram=1024, disk=1024, gpu_count=0, shm=0)

daemon = Daemon.create(
    "hello-daemon:1",
    name="hello-daemon",
    config={},
    resources=resources)
daemon_instance = daemon.run()


app = App.create(
    "hello-app:1",
    name="hello-app",
    config={
        "daemon-id": daemon_instance.id
    },
    resources=resources)
app_instance = app.run()

# Running the App will request Capabilities on the daemon we pass in to
# the config. This grants that request.
resolve_delegation_request(app_instance)
