"""Agents written with agent libraries (Pydantic AI, LangGraph), put under foureyes' supervision.

Each adapter turns the library's agent into an agent's ``propose``: it runs on the foureyes
model chain, its *read* tools run and are logged, and its *act* tools never run inside it:
each act call becomes a proposal, executed only by the executor after its verdict.
"""
