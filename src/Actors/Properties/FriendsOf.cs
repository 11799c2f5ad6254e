using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("ActorQueue.Tests")]
