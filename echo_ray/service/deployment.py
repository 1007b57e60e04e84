"""The ingress as a Serve deployment. Each replica builds its own FastAPI app after its
constructor ran (`__serve_build_asgi_app__`, Serve's late-bound ingress), from its own
settings: nothing about the app is built at import or pickled from the driver."""

from __future__ import annotations

from ray import serve

from .ingress import IngressImpl


@serve.deployment(name="IngressImpl", max_ongoing_requests=64,
                  ray_actor_options={"num_cpus": 0})
@serve.ingress()
class Ingress(IngressImpl):
    def __serve_build_asgi_app__(self):
        from .routes import build_api

        return build_api(self)
