import requests

from flask import Flask

from dtaas.instance import Instance
from dtaas.utils import current_config, access_token


app = Flask(__name__)
config = current_config()

daemon = Instance.from_id(config["daemon-id"])
daemon_url = f"http://{daemon.ipv4_address}:8080/hello"


@app.route("/")
def serve_web_frontend():
    response = requests.get(daemon_url)
    return f"The Daemon says, {response.text}"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port="8080")
