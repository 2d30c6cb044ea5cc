"""The HTTP floor: a bare Flask JSON endpoint, served with the same gunicorn settings."""

from flask import Flask, jsonify, request


def create_app():
    """Create an app that reads a JSON body and answers 201 with JSON, and nothing else."""
    app = Flask("floor")

    @app.post("/v1/visits")
    def visits():
        body = request.get_json()
        return jsonify(visit_id="floor", cases=[{"n": len(body)}]), 201

    return app
