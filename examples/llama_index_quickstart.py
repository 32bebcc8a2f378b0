"""LlamaIndex quickstart: index documents, retrieve the best match for a question.

export AIMLAPI_API_KEY=...        # https://aimlapi.com/app/keys
python examples/llama_index_quickstart.py
"""

from llama_index.core import Document, Settings, VectorStoreIndex

from llama_index_aimlapi_bge import AIMLBGEEmbedding

# Key from AIMLAPI_API_KEY, endpoint from AIMLAPI_BASE_URL.
Settings.embed_model = AIMLBGEEmbedding()

documents = [
    Document(text="Laura is a DJ who plays records at a night club."),
    Document(text="Paris is the capital of France, on the river Seine."),
    Document(text="The cat sat on the mat."),
]
index = VectorStoreIndex.from_documents(documents)

question = "What is the capital of France?"
for hit in index.as_retriever(similarity_top_k=2).retrieve(question):
    print(f"{hit.score:.3f}  {hit.node.get_content()}")

print("usage:", Settings.embed_model.usage)
