# A stand-in for the part of Elixir's Nx that the README's Elixir snippet
# uses, for the test that runs the snippet (cmd/ergonx): real Nx cannot be
# installed where the tests run (no Hex). Tensors are %Nx.Tensor{} structs
# on Nx.BinaryBackend, as Nx builds them; Nx.Serving is the Erlang module
# Elixir.Nx.Serving of testdata/nx (Nx's distributed protocol), loaded
# with -pa. Like Nx's application, loading this file starts the pg scope
# Nx.Serving.PG.

defmodule Nx.BinaryBackend do
  defstruct [:state]
end

defmodule Nx.Tensor do
  defstruct [:data, :type, :shape, :names, vectorized_axes: []]
end

defmodule Nx do
  @moduledoc false

  # tensor(number | nested list, type: :f32): f32 only.
  def tensor(value, opts \\ []) do
    :f32 = Keyword.get(opts, :type, :f32)
    {flat, shape} = flatten(value)
    f32(flat, shape)
  end

  # broadcast(scalar tensor or number, shape)
  def broadcast(%Nx.Tensor{shape: {}} = t, shape), do: broadcast(hd(to_flat_list(t)), shape)

  def broadcast(x, shape) when is_number(x) do
    f32(List.duplicate(x, Tuple.product(shape)), shape)
  end

  # multiply(t, number)
  def multiply(%Nx.Tensor{shape: shape} = t, n) when is_number(n),
    do: f32(Enum.map(to_flat_list(t), &(&1 * n)), shape)

  # backend_copy(t): to Nx.BinaryBackend, where the stand-in's tensors are.
  def backend_copy(%Nx.Tensor{} = t), do: t

  # argmax(t, axis: 1) on a 2-D f32 tensor: s64 indices, one per row.
  def argmax(%Nx.Tensor{shape: {rows, cols}} = t, axis: 1) do
    idx =
      t
      |> to_flat_list()
      |> Enum.chunk_every(cols)
      |> Enum.map(fn row -> row |> Enum.with_index() |> Enum.max_by(&elem(&1, 0)) |> elem(1) end)

    %Nx.Tensor{
      data: %Nx.BinaryBackend{state: for(i <- idx, into: <<>>, do: <<i::signed-little-64>>)},
      type: {:s, 64},
      shape: {rows},
      names: [nil]
    }
  end

  def to_flat_list(%Nx.Tensor{data: %{state: bin}, type: {:f, 32}}),
    do: for(<<x::float-little-32 <- bin>>, do: x)

  def to_flat_list(%Nx.Tensor{data: %{state: bin}, type: {:s, 64}}),
    do: for(<<x::signed-little-64 <- bin>>, do: x)

  defp f32(flat, shape) do
    %Nx.Tensor{
      data: %Nx.BinaryBackend{state: for(x <- flat, into: <<>>, do: <<x * 1.0::float-little-32>>)},
      type: {:f, 32},
      shape: shape,
      names: List.duplicate(nil, tuple_size(shape))
    }
  end

  defp flatten(x) when is_number(x), do: {[x], {}}

  defp flatten([first | _] = list) do
    {_, inner} = flatten(first)
    {Enum.flat_map(list, &elem(flatten(&1), 0)), Tuple.insert_at(inner, 0, length(list))}
  end
end

defmodule Nx.Batch do
  @moduledoc false
  # concatenate(tensors): a batch of their rows, its stack of closures as Nx's.
  def concatenate(tensors), do: :"Elixir.Nx.Serving".batch_concatenate(tensors)
end

{:ok, _} = :pg.start(Nx.Serving.PG)
