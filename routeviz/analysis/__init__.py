"""Views derived from a stored run beyond the numbers in `routeviz.metrics`.

`embeddings` (2-D maps of the hidden states routers saw), `contexts` (a token's place in
its original text), `find` (token and tag search), `cards` (what one expert does, with
labels judged against chance). Reads the store; knows nothing of Streamlit.
"""
