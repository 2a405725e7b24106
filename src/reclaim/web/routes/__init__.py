"""The web app's pages, one router per page; ``reclaim.web.app.create_app`` mounts them all.

A page's route renders what the domain modules return (enroll, findings, decisions, report.pack,
protect): no SQL and no custody writes here. Shared pieces: ``web.deps`` (the case), ``web.pages``
(templates, language), ``web.guard`` (loopback, same-origin).
"""
