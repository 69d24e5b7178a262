from dtaas.capability import resolve_delegation_request
from dtaas.pipeline import Pipeline
from dtaas.instance import Resources
from dtaas.app import App

resources = Resources(cpu_cores=1, ram=1024, disk=1024, gpu_count=0, shm=0)
pipeline = Pipeline.create(
    "hello-pipeline:1",
    name="hello-pipeline",
    resources=resources,
    config={})
instance = pipeline.run()

# What the Pipeline needs on the prototypes it deploys (its manifest's capabilities) and we
# could not delegate at once: we ran it, we grant it.
resolve_delegation_request(instance)

# After the Pipeline has completed, the App is in its outputs, and among the Apps.
instance.wait()
if instance.state != "exited" or instance.exit_code != 0:
    for line in instance.logs():
        print(line.text)
    raise SystemExit(f"hello-pipeline ended {instance.state} (exit code {instance.exit_code})")
app = instance.output_servables("app")[0]
listed = [a for a in App.list() if a.name == "hello-app"][-1]
print(f"app in the pipeline's outputs: {app.id} {app.url}")
print(f"app from App.list():           {listed.id} {listed.url}")
