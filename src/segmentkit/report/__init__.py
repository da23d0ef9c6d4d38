"""What a person reads: the HTML report and plots.

They take a result; results never import them.
"""
