project = "Widget"
html_theme = "furo"
