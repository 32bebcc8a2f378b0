"""LangChain quickstart: embed texts, search an in-memory vector store.

export AIMLAPI_API_KEY=...        # https://aimlapi.com/app/keys
python examples/langchain_quickstart.py
"""

from langchain_core.vectorstores import InMemoryVectorStore

from langchain_aimlapi_bge import AIMLBGEEmbeddings

embeddings = AIMLBGEEmbeddings()  # key from AIMLAPI_API_KEY, endpoint from AIMLAPI_BASE_URL

texts = [
    "Laura is a DJ who plays records at a night club.",
    "Paris is the capital of France, on the river Seine.",
    "The cat sat on the mat.",
]
store = InMemoryVectorStore.from_texts(texts, embedding=embeddings)

query = "Who plays music at night?"
for document, score in store.similarity_search_with_score(query, k=2):
    print(f"{score:.3f}  {document.page_content}")

print("query vector dimension:", len(embeddings.embed_query(query)))
print("usage:", embeddings.usage)
