"""The dashboard's pages: each module is one thin page run by `app.py` through st.navigation."""
