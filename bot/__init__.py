"""Answering flow: question -> retriever -> prompt -> answerer -> render -> Discord."""
