"""Channel partner rules: evaluation, deal registration, territory, prices, routing, KPIs, RFx.

Pure: no Flask, paho or SQLAlchemy; time is a parameter. Persistence lives in app/db and
the pages and API in app/web/partners.py.
"""
