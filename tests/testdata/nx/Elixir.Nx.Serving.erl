%% A stand-in for Elixir's Nx.Serving in ergonx's interop tests.
%%
%% Real Nx cannot be installed where the tests run (no Hex), so this module,
%% written in Erlang under Nx's own module name, speaks exactly what Nx's
%% serving.ex sends between nodes, for each generation of its distributed
%% protocol:
%%
%%   v05 (Nx 0.5.x)      group 'Elixir.Nx.Serving' shared by every serving;
%%                       spawn_monitor of __distributed_batched_run__/3
%%                       with [Ref, Name, Input]; the caller's receive does
%%                       not pin the monitor reference (Nx #1251).
%%   v06 (Nx 0.6-0.9)    the same shared group; __distributed_batched_run__/4
%%                       with [ClientPid, Ref, Name, Input].
%%   v10 (Nx 0.10+)      the group is the serving's name; /4 as in v06.
%%
%% v06 and v10 callers also read a streaming serving's answer, as Nx 0.6+
%% callers do (see receive_stream/3).
%%
%% In every generation the spawned process exits with {Ref, Result} when the
%% request succeeded, with noproc when no serving of that name runs on its
%% node (the caller then retries another member, 3 attempts in all), and with
%% the batch's failure otherwise; the caller exits with
%% {Reason, {'Elixir.Nx.Serving', distributed_batched_run, [Name, Input, [{retries, N}]]}}.
%% A function of the other generation does not exist: calling it fails with
%% undef, as it would on a real node of that version.
%%
%% The serving itself batches like Nx 0.5 (a stack filled up to batch_size
%% or until batch_timeout, one task per free partition, a queue of batches)
%% on a fake tensor: %Nx.Tensor{} maps on Nx.BinaryBackend holding
%% little-endian f32 rows. Its computation doubles every element. A batch
%% is a real-looking %Nx.Batch{} whose stack holds closures, as Nx's does.
-module('Elixir.Nx.Serving').
-behaviour(gen_server).

-export([set_generation/1, generation/0,
         start_serving/2, stop_serving/1,
         batched_run/2, batched_run/3,
         '__distributed_batched_run__'/3, '__distributed_batched_run__'/4,
         tensor/2, to_floats/1, batch_concatenate/1, plain_tensor_preprocessing/0,
         run_many/3, bench/4, retries/0,
         jit/1, client_preprocessing/2, start_link/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(PG, 'Elixir.Nx.Serving.PG').
-define(TIMEOUT_MSG, {'Elixir.Nx.Serving', timeout}).

%%% Generations

set_generation(G) when G =:= v05; G =:= v06; G =:= v10 ->
    persistent_term:put({?MODULE, generation}, G),
    persistent_term:put({?MODULE, retries}, counters:new(1, [atomics])).

generation() ->
    persistent_term:get({?MODULE, generation}, v10).

group(Name) ->
    case generation() of
        v10 -> Name;
        _ -> ?MODULE
    end.

%%% Fake tensors and batches

%% tensor(Floats, Shape): an f32 %Nx.Tensor{} on Nx.BinaryBackend.
tensor(Floats, Shape) ->
    Bin = << <<F:32/float-little>> || F <- Floats >>,
    tensor_of(Bin, Shape).

tensor_of(Bin, Shape) ->
    #{'__struct__' => 'Elixir.Nx.Tensor',
      data => #{'__struct__' => 'Elixir.Nx.BinaryBackend', state => Bin},
      type => {f, 32},
      shape => Shape,
      names => [nil || _ <- tuple_to_list(Shape)],
      vectorized_axes => []}.

to_floats(#{'__struct__' := 'Elixir.Nx.Tensor', data := #{state := Bin}}) ->
    [F || <<F:32/float-little>> <= Bin].

rows(#{shape := Shape}) when tuple_size(Shape) > 0 -> element(1, Shape).

%% batch_concatenate([Tensor]): Nx.Batch.concatenate/1, closures included.
batch_concatenate(Tensors) ->
    Stack = [{[fun() -> T end], rows(T)} || T <- lists:reverse(Tensors)],
    #{'__struct__' => 'Elixir.Nx.Batch', stack => Stack,
      size => lists:sum([rows(T) || T <- Tensors]),
      template => hd(Tensors), pad => 0, key => default}.

%% The client preprocessing a serving needs to be called with plain
%% tensors (what ergonx sends): a tensor's rows become a batch.
plain_tensor_preprocessing() ->
    fun(T) -> {batch_concatenate([T]), client_info} end.

%%% Serving processes

%% start_serving(Name, Opts) starts a serving registered as Name. Opts:
%% batch_size (1), batch_timeout ms (100), partitions (1),
%% client_preprocessing (fun | nil), distributed_postprocessing (fun),
%% fail (false | Message: every batch raises a RuntimeError).
start_serving(Name, Opts) ->
    gen_server:start({local, Name}, ?MODULE, {Name, Opts}, []).

stop_serving(Name) ->
    gen_server:stop(Name).

init({Name, Opts}) ->
    process_flag(trap_exit, true),
    Partitions = maps:get(partitions, Opts, 1),
    persistent_term:put({?MODULE, Name},
                        #{limit => maps:get(batch_size, Opts, 1),
                          preprocessing => maps:get(client_preprocessing, Opts, nil),
                          distributed_postprocessing =>
                              maps:get(distributed_postprocessing, Opts, fun(X) -> X end)}),
    ok = pg:join(?PG, group(Name), lists:duplicate(Partitions, self())),
    {ok, #{name => Name, limit => maps:get(batch_size, Opts, 1),
           timeout => maps:get(batch_timeout, Opts, 100),
           fail => maps:get(fail, Opts, false),
           exec => maps:get(exec, Opts, fun double/1),
           stack => [], count => 0, timer => none,
           in_queue => queue:new(),
           out_queue => queue:from_list(lists:seq(0, Partitions - 1)),
           tasks => #{}}}.

handle_call(_Msg, _From, State) ->
    {reply, badarg, State}.

handle_cast(_Msg, State) ->
    {noreply, State}.

handle_info({?MODULE, batched_run, Ref, Batch}, State) ->
    #{count := Count, limit := Limit, stack := Stack} = State,
    #{size := Size} = Batch,
    S1 = State#{stack := [{Ref, Batch} | Stack], count := Count + Size},
    if
        Count + Size =:= Limit -> {noreply, execute(S1)};
        true -> {noreply, start_timer(S1)}
    end;
handle_info(?TIMEOUT_MSG, State = #{out_queue := Out, in_queue := In}) ->
    case queue:is_empty(In) andalso not queue:is_empty(Out) of
        true -> {noreply, execute(State#{timer := done})};
        false -> {noreply, State#{timer := done}}
    end;
handle_info({'DOWN', TaskRef, process, _, Reason}, State = #{tasks := Tasks}) ->
    case maps:take(TaskRef, Tasks) of
        {{Partition, RefSizes}, Tasks1} ->
            reply_down(Reason, RefSizes),
            {noreply, task_done(State#{tasks := Tasks1}, Partition)};
        error ->
            {noreply, State}
    end;
handle_info({TaskRef, {task_ok, Output}}, State = #{tasks := Tasks}) ->
    case maps:take(TaskRef, Tasks) of
        {{Partition, RefSizes}, Tasks1} ->
            erlang:demonitor(TaskRef, [flush]),
            [Ref ! {Ref, {Start, Size, Output, server_info}} || {Ref, Start, Size} <- RefSizes],
            {noreply, task_done(State#{tasks := Tasks1}, Partition)};
        error ->
            {noreply, State}
    end;
handle_info(_Msg, State) ->
    {noreply, State}.

terminate(_Reason, #{stack := Stack, in_queue := In}) ->
    [reply_down(noproc, RefSizes) || {_Batch, RefSizes} <- queue:to_list(In)],
    [Ref ! {'DOWN', Ref, process, self(), noproc} || {Ref, _} <- Stack],
    ok.

start_timer(State = #{timer := none, timeout := Timeout}) ->
    State#{timer := erlang:send_after(Timeout, self(), ?TIMEOUT_MSG)};
start_timer(State) ->
    State.

execute(State = #{stack := []}) ->
    State;
execute(State = #{stack := Stack, count := Count, timer := Timer}) ->
    case is_reference(Timer) of
        true ->
            erlang:cancel_timer(Timer),
            receive ?TIMEOUT_MSG -> ok after 0 -> ok end;
        false ->
            ok
    end,
    {RefSizes, Batches, _} =
        lists:foldl(fun({Ref, #{size := Size} = B}, {RS, Bs, End}) ->
                            {[{Ref, End - Size, Size} | RS], [B | Bs], End - Size}
                    end, {[], [], Count}, Stack),
    task_or_enqueue(State#{stack := [], count := 0, timer := none}, Batches, RefSizes).

task_or_enqueue(State = #{out_queue := Out, in_queue := In, tasks := Tasks, fail := Fail, exec := Exec}, Batches, RefSizes) ->
    case queue:out(Out) of
        {empty, _} ->
            State#{in_queue := queue:in({Batches, RefSizes}, In)};
        {{value, Partition}, Out1} ->
            Server = self(),
            %% The task learns its monitor's reference to tag its reply,
            %% as a Task does.
            {TaskPid, TaskRef} =
                spawn_monitor(fun() ->
                                      Output = run_batch(Batches, Fail, Exec),
                                      TaskRef1 = receive {task_ref, R} -> R end,
                                      Server ! {TaskRef1, {task_ok, Output}}
                              end),
            TaskPid ! {task_ref, TaskRef},
            State#{out_queue := Out1, tasks := Tasks#{TaskRef => {Partition, RefSizes}}}
    end.

task_done(State = #{in_queue := In, out_queue := Out, timer := Timer}, Partition) ->
    Out1 = queue:in(Partition, Out),
    case queue:out(In) of
        {empty, _} when Timer =:= done -> execute(State#{out_queue := Out1});
        {empty, _} -> State#{out_queue := Out1};
        {{value, {Batches, RefSizes}}, In1} ->
            task_or_enqueue(State#{out_queue := Out1, in_queue := In1}, Batches, RefSizes)
    end.

reply_down(Reason, RefSizes) ->
    [Ref ! {'DOWN', Ref, process, self(), Reason} || {Ref, _, _} <- RefSizes].

%% run_batch merges the batches (their closures run here, as in Nx's
%% defn) and runs the serving's function on them: doubling, unless the
%% serving was made with jit/1.
run_batch(_Batches, Fail, _Exec) when Fail =/= false ->
    erlang:error(#{'__struct__' => 'Elixir.RuntimeError', '__exception__' => true,
                   message => iolist_to_binary(Fail)});
run_batch(Batches, false, Exec) ->
    Tensors = [Fun() || #{stack := Stack} <- Batches, {Funs, _} <- lists:reverse(Stack), Fun <- Funs],
    #{shape := Shape0} = hd(Tensors),
    Rows = lists:sum([rows(T) || T <- Tensors]),
    Bin = << <<F:32/float-little>> || T <- Tensors, F <- to_floats(T) >>,
    Exec(tensor_of(Bin, setelement(1, Shape0, Rows))).

double(T = #{shape := Shape}) ->
    tensor_of(<< <<(F * 2):32/float-little>> || F <- to_floats(T) >>, Shape).

%%% Nx's builders, for Elixir code: Nx.Serving.jit(fun) |>
%%% Nx.Serving.client_preprocessing(fun) |> then
%%% Nx.Serving.start_link(serving: s, name: n, batch_size: b).

jit(Fun) when is_function(Fun, 1) ->
    #{'__struct__' => ?MODULE, exec => Fun, client_preprocessing => nil}.

client_preprocessing(Serving = #{'__struct__' := ?MODULE}, Fun) ->
    Serving#{client_preprocessing := Fun}.

start_link(Opts) ->
    #{exec := Exec, client_preprocessing := Pre} = proplists:get_value(serving, Opts),
    Partitions = case proplists:get_value(partitions, Opts, false) of
                     true -> erlang:system_info(schedulers_online);
                     false -> 1
                 end,
    gen_server:start_link({local, proplists:get_value(name, Opts)}, ?MODULE,
                          {proplists:get_value(name, Opts),
                           #{batch_size => proplists:get_value(batch_size, Opts, 1),
                             batch_timeout => proplists:get_value(batch_timeout, Opts, 100),
                             partitions => Partitions, client_preprocessing => Pre, exec => Exec}}, []).

%%% Callers

batched_run(Target, Input) ->
    batched_run(Target, Input, fun(X) -> X end).

batched_run({distributed, Name}, Input, DistPre) when is_atom(Name) ->
    with_retries(Name, DistPre(Input), 3);
batched_run({local, Name}, Input, _DistPre) when is_atom(Name) ->
    Pid = case whereis(Name) of
              undefined -> exit({noproc, {?MODULE, local_batched_run, [Name, Input]}});
              P -> P
          end,
    case local_batched_run(Pid, Name, Input) of
        {ok, Result} -> Result;
        {'DOWN', Reason} -> exit({Reason, {?MODULE, local_batched_run, [Name, Input]}})
    end.

%% retries() is how many times callers of this node retried on noproc
%% (for the tests; Nx counts nothing).
retries() ->
    case persistent_term:get({?MODULE, retries}, undefined) of
        undefined -> 0;
        C -> counters:get(C, 1)
    end.

count_retry() ->
    case persistent_term:get({?MODULE, retries}, undefined) of
        undefined -> ok;
        C -> counters:add(C, 1, 1)
    end.

with_retries(Name, Input, 0) ->
    exit({noproc, {?MODULE, distributed_batched_run, [Name, Input, [{retries, 0}]]}});
with_retries(Name, Input, Retries) ->
    case pg:get_members(?PG, group(Name)) of
        [] ->
            exit({noproc, {?MODULE, distributed_batched_run, [Name, Input, [{retries, Retries}]]}});
        Entries ->
            Pid = lists:nth(rand:uniform(length(Entries)), Entries),
            Ref = make_ref(),
            case generation() of
                v05 -> call_v05(Name, Input, Retries, Pid, Ref);
                _ -> call_v06(Name, Input, Retries, Pid, Ref)
            end
    end.

%% Nx 0.5: the last two clauses match any DOWN (the seed's bug, #1251).
call_v05(Name, Input, Retries, Pid, Ref) ->
    {_, MRef} = spawn_monitor(node(Pid), ?MODULE, '__distributed_batched_run__', [Ref, Name, Input]),
    receive
        {'DOWN', MRef, _, _, {Ref, Result}} ->
            Result;
        {'DOWN', _, _, _, noproc} ->
            count_retry(),
            with_retries(Name, Input, Retries - 1);
        {'DOWN', _, _, _, Reason} ->
            exit({Reason, {?MODULE, distributed_batched_run, [Name, Input, [{retries, Retries}]]}})
    end.

call_v06(Name, Input, Retries, Pid, Ref) ->
    {_, MRef} = spawn_monitor(node(Pid), ?MODULE, '__distributed_batched_run__', [self(), Ref, Name, Input]),
    receive
        {Ref, streaming} ->
            receive_stream(Ref, MRef, []);
        {'DOWN', MRef, _, _, {Ref, Result}} ->
            Result;
        {'DOWN', MRef, _, _, noproc} ->
            count_retry(),
            with_retries(Name, Input, Retries - 1);
        {'DOWN', MRef, _, _, Reason} ->
            exit({Reason, {?MODULE, distributed_batched_run, [Name, Input, [{retries, Retries}]]}})
    end.

%% Nx 0.6+: a streaming serving answers {Ref, streaming}, then one
%% {Ref, Event} message per event ({batch, Output, Metadata} or
%% {Hook, Value}), then exits {Ref, streaming}; any other exit is the
%% stream's failure. Nx returns a lazy Stream of the events; the stand-in
%% returns {stream, Events} once the stream is over.
receive_stream(Ref, MRef, Acc) ->
    receive
        {Ref, Event} ->
            receive_stream(Ref, MRef, [Event | Acc]);
        {'DOWN', MRef, _, _, {Ref, streaming}} ->
            {stream, lists:reverse(Acc)};
        {'DOWN', MRef, _, _, Reason} ->
            exit({Reason, {?MODULE, streaming, []}})
    end.

'__distributed_batched_run__'(Ref, Name, Input) ->
    case generation() of
        v05 -> distributed_run(Ref, Name, Input);
        _ -> erlang:raise(error, undef, [{?MODULE, '__distributed_batched_run__', [Ref, Name, Input], []}])
    end.

'__distributed_batched_run__'(ClientPid, Ref, Name, Input) ->
    case generation() of
        v05 -> erlang:raise(error, undef, [{?MODULE, '__distributed_batched_run__', [ClientPid, Ref, Name, Input], []}]);
        _ -> distributed_run(Ref, Name, Input)
    end.

distributed_run(Ref, Name, Input) ->
    Pid = case whereis(Name) of
              undefined -> exit(noproc);
              P -> P
          end,
    case local_batched_run(Pid, Name, Input) of
        {ok, Result} ->
            #{distributed_postprocessing := Post} = persistent_term:get({?MODULE, Name}),
            exit({Ref, Post(Result)});
        {'DOWN', Reason} ->
            exit(Reason)
    end.

local_batched_run(Pid, Name, Input) ->
    #{limit := Limit, preprocessing := Pre} = persistent_term:get({?MODULE, Name}),
    {Batch, _Info} = preprocess(Pre, Input),
    #{size := Size} = Batch,
    Size =< Limit orelse
        erlang:error(argument_error(io_lib:format(
                                      "batch size (~b) cannot exceed Nx.Serving server batch size of ~b",
                                      [Size, Limit]))),
    Ref = erlang:monitor(process, Pid, [{alias, demonitor}]),
    erlang:send(Pid, {?MODULE, batched_run, Ref, Batch}, [noconnect]),
    receive
        {Ref, {Start, Count, Output, _Metadata}} ->
            erlang:demonitor(Ref, [flush]),
            {ok, slice_rows(Output, Start, Count)};
        {'DOWN', Ref, _, _, Reason} ->
            erlang:demonitor(Ref, [flush]),
            {'DOWN', Reason}
    end.

preprocess(nil, #{'__struct__' := 'Elixir.Nx.Batch'} = Batch) ->
    {Batch, client_info};
preprocess(nil, _Input) ->
    erlang:error(argument_error("the default client_preprocessing expects a `Nx.Batch` as input. "
                                "Give a batch or use a custom preprocessing"));
preprocess(Fun, Input) ->
    Fun(Input).

argument_error(Message) ->
    #{'__struct__' => 'Elixir.ArgumentError', '__exception__' => true,
      message => iolist_to_binary(Message)}.

slice_rows(#{shape := Shape, data := #{state := Bin}}, Start, Count) ->
    RowBytes = byte_size(Bin) div element(1, Shape),
    Part = binary:part(Bin, Start * RowBytes, Count * RowBytes),
    tensor_of(Part, setelement(1, Shape, Count)).

%%% Load helpers for the tests

%% run_many(Target, Inputs, ReplyTo): one process per input calls
%% batched_run at once; ReplyTo gets {run_many, [{Index, {ok, Result} |
%% {exit, Reason}}]} in input order.
run_many(Target, Inputs, ReplyTo) ->
    Self = self(),
    Indexed = lists:zip(lists:seq(1, length(Inputs)), Inputs),
    [spawn(fun() ->
                   R = try {ok, batched_run(Target, In)}
                       catch exit:Reason -> {exit, Reason};
                             error:Reason -> {error, Reason}
                       end,
                   Self ! {run_many_result, I, R}
           end) || {I, In} <- Indexed],
    Results = [receive {run_many_result, I, R} -> {I, R} end || {I, _} <- Indexed],
    ReplyTo ! {run_many, Results},
    Results.

%% bench(Target, Input, Callers, Millis): Callers processes call
%% batched_run in a loop for Millis; returns {Calls, Failures, SortedMicros}.
bench(Target, Input, Callers, Millis) ->
    Self = self(),
    Deadline = erlang:monotonic_time(millisecond) + Millis,
    [spawn(fun() -> Self ! {bench_done, bench_loop(Target, Input, Deadline, 0, 0, [])} end)
     || _ <- lists:seq(1, Callers)],
    Parts = [receive {bench_done, P} -> P end || _ <- lists:seq(1, Callers)],
    {lists:sum([C || {C, _, _} <- Parts]),
     lists:sum([F || {_, F, _} <- Parts]),
     lists:sort(lists:append([L || {_, _, L} <- Parts]))}.

bench_loop(Target, Input, Deadline, Calls, Fails, Lat) ->
    case erlang:monotonic_time(millisecond) >= Deadline of
        true ->
            {Calls, Fails, Lat};
        false ->
            T0 = erlang:monotonic_time(microsecond),
            Ok = try batched_run(Target, Input), true catch _:_ -> false end,
            T1 = erlang:monotonic_time(microsecond),
            case Ok of
                true -> bench_loop(Target, Input, Deadline, Calls + 1, Fails, [T1 - T0 | Lat]);
                false -> bench_loop(Target, Input, Deadline, Calls, Fails + 1, Lat)
            end
    end.
