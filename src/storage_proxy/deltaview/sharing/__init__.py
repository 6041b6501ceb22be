"""The Delta Sharing server on the view's listener (``/delta-sharing/``): the open protocol
pandas, Spark and Power BI speak, answered with the S3 view's users and partition rules.

``recipients`` (bearer tokens → users, each with an expiry) · ``service`` (visibility,
snapshots, file URLs) · ``handlers`` (routes and errors) · ``query`` · ``changes`` ·
``protocol`` (response lines, hints) · ``files`` (proxy-served file URLs).
"""
