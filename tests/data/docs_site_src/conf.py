project = "Quillstore"
author = "Quillstore contributors"
copyright = "2026, Quillstore contributors"
extensions = []
html_theme = "alabaster"
html_baseurl = ""
