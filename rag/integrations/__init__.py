"""Adapters to other frameworks, each an optional module importing its library:

- `rag.integrations.langchain`: `RagkitRetriever`, a LangChain retriever (`pip install 'ragkit[langchain]'`)
- `rag.integrations.llama_index`: `RagkitRetriever` and `RagkitSynthesizer` for LlamaIndex
  (`pip install 'ragkit[llamaindex]'`)

Nothing is imported here, so `import rag` never needs either library.
"""
