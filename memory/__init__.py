"""The ground floor: the storage layer of the whole app.

Every table lives here (models.py), with the engines and migrations (db.py) and the functions that
read and write them: messages and threads (store.py), the profile and style card (profile.py), the
vectors and their per-user FAISS indexes (vectors.py, index.py, embed.py), hybrid recall
(retrieve.py), and the records other floors own but keep in SQL, such as the safety audit, the
operators' actions, accounts' limits and the app's own keys. It imports none of our other packages:
the floors above decide what the rows mean; this one keeps them safe, scoped by user, and erasable
(erasure.py).
"""
